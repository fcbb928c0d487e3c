"""``secquant aggregate``: the secure-aggregation aggregator, a separate server.

It is separate from ``secquant serve`` because it holds no model and a
different trust role: it sums Paillier ciphertexts for rounds that the
key-holder signed, accepts one signed submission per registered party, and
never holds a secret key (``protocols/secure-aggregation.md``).

``--keyholder-key`` is the key-holder's Ed25519 public key (``secquant keys new``
on the key-holder's machine, then copy its ``.pub``): only rounds it signs are
opened or closed.  The bearer token is a network gate only; it comes from
``--token-file`` (a file of mode 0600) or ``$SECQUANT_TOKEN`` (never from argv,
where ``ps`` shows it), or is generated and printed once; ``--no-auth`` is the
explicit opt-out.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``aggregate`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "aggregate", help="run the secure-aggregation aggregator (sums Paillier-encrypted, party-signed updates)")
    p.add_argument("--keyholder-key", required=True,
                   help="the key-holder's Ed25519 public key (.pub): only rounds it signs are opened or closed")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--token-file", default=None,
                   help="file holding the bearer token (mode 0600; default: $SECQUANT_TOKEN or a random one)")
    p.add_argument("--no-auth", action="store_true", help="serve without the token gate (not recommended)")
    p.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    p.add_argument("--keyfile", default=None, help="PEM private key of --certfile")
    p.add_argument("--max-request-mb", type=float, default=64.0)
    p.add_argument("--max-rounds", type=int, default=16)
    p.add_argument("--round-ttl", type=float, default=3600.0, help="seconds")
    p.set_defaults(func=run)


def _read_token(args: argparse.Namespace) -> str | None:
    """The token from ``--token-file`` (refused if others can read it), ``$SECQUANT_TOKEN``, or a new one.

    Raises:
        KeyMaterialError: the token file is readable by group or others.
    """
    if args.no_auth:
        return None
    if args.token_file:
        from secquant.signing import read_secret_file

        return read_secret_file(args.token_file, "token file").decode().strip()
    token = os.environ.get("SECQUANT_TOKEN")
    if not token:
        token = secrets.token_urlsafe(32)
        print(f"secquant aggregate: bearer token (shown once): {token}", file=sys.stderr)
    return token


def run(args: argparse.Namespace) -> int:
    """Serve the aggregator until interrupted."""
    from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
    from secquant.protocol.runner import serve

    config = AggregatorConfig(keyholder_key=args.keyholder_key, token=_read_token(args), allow_no_auth=args.no_auth,
                              max_request_bytes=int(args.max_request_mb * 2**20), max_rounds=args.max_rounds,
                              round_ttl=args.round_ttl)
    serve(create_aggregator_app(config), args.host, args.port, certfile=args.certfile, keyfile=args.keyfile)
    return 0
