"""``secquant tokens``: make and list the bearer tokens of ``secquant serve --tokens FILE``.

* ``secquant tokens new --file tokens.jsonl --id alice [--scope infer] [--query-budget N] ...
  [--token-out alice.token]``: a fresh 256-bit token from :mod:`secrets`.  Its
  record (identity, scopes, limits, ``sha256`` of the token; never the token)
  is appended to the token file (created with mode 0600); the token itself
  goes to ``--token-out`` (mode 0600, never overwritten) or, without it, to
  stderr once.  Give it to the client, who passes it by file or
  ``$SECQUANT_TOKEN``, never on a command line.
* ``secquant tokens list --file tokens.jsonl``: the records, without hashes.

The file format is in :mod:`secquant.protocol.inference.tokens`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``tokens`` and its sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tokens", help="make and list bearer tokens for `secquant serve --tokens`", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    p = sub.add_parser("new", help="append a new token's record to FILE; write the token to --token-out")
    p.add_argument("--file", required=True, help="token file (JSON lines; created mode 0600)")
    p.add_argument("--id", required=True, help="identity (sessions and usage are per id)")
    p.add_argument("--scope", action="append", choices=["infer", "admin"], default=None,
                   help="repeatable (default infer)")
    p.add_argument("--query-budget", type=int, default=None, help="inputs per window (default: no budget)")
    p.add_argument("--window", type=float, default=86400.0, help="budget window in seconds (default one day)")
    p.add_argument("--rate", type=float, default=None, help="requests per second (default: no rate limit)")
    p.add_argument("--burst", type=int, default=10, help="requests admitted at once before --rate applies")
    p.add_argument("--epsilon", type=float, default=None, help="privacy budget under a noisy --release policy")
    p.add_argument("--delta", type=float, default=1e-6, help="delta of --epsilon")
    p.add_argument("--max-sessions", type=int, default=None, help="live sessions of this token")
    p.add_argument("--token-out", default=None, help="write the token here (mode 0600) instead of stderr")
    p.set_defaults(func=_new)
    p = sub.add_parser("list", help="print the records of a token file (no hashes)")
    p.add_argument("--file", required=True)
    p.set_defaults(func=_list)


def _append(path: Path, line: str) -> None:
    """Append one line, creating the file with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line + "\n")


def _new(args: argparse.Namespace) -> int:
    from secquant.errors import ConfigError
    from secquant.protocol.inference.tokens import TokenTable, new_token
    from secquant.signing import write_secret_file

    path = Path(args.file)
    existing = list(TokenTable.from_file(path)) if path.exists() and path.stat().st_size else []
    token, record = new_token(args.id, args.scope or ["infer"], query_budget=args.query_budget,
                              budget_window_s=args.window, rate_per_s=args.rate, burst=args.burst,
                              epsilon=args.epsilon, delta=args.delta, max_sessions=args.max_sessions)
    TokenTable([*existing, record])  # refuses a duplicate id before anything is written
    if args.token_out:
        try:
            write_secret_file(args.token_out, (token + "\n").encode(), mode=0o600)
        except FileExistsError:
            raise ConfigError(f"{args.token_out} exists; refusing to overwrite a token") from None
    _append(path, json.dumps(record.to_json(), sort_keys=True))
    if args.token_out:
        print(f"token {record.id!r} written to {args.token_out} (mode 600); record appended to {path}")
    else:
        print(f"secquant tokens: token for {record.id!r} (shown once): {token}", file=sys.stderr)
        print(f"record appended to {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from secquant.protocol.inference.tokens import TokenTable

    for record in TokenTable.from_file(args.file):
        print(json.dumps(record.public(), sort_keys=True))
    return 0
