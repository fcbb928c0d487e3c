"""``secquant aggregate``: the secure-aggregation aggregator, a separate server.

It is separate from ``secquant serve`` because it holds no model and a
different trust role: it sums Paillier ciphertexts for rounds opened by a
key-holder and never holds a key (``protocols/secure-aggregation.md``).
The token comes from ``--token``, ``$SECQUANT_TOKEN``, or is generated and
printed once; ``--no-auth`` is the explicit opt-out.
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
        "aggregate", help="run the secure-aggregation aggregator (sums Paillier-encrypted client updates)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--token", default=None, help="bearer token (default: $SECQUANT_TOKEN or a random one)")
    p.add_argument("--no-auth", action="store_true", help="serve without authentication (not recommended)")
    p.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    p.add_argument("--keyfile", default=None, help="PEM private key of --certfile")
    p.add_argument("--max-request-mb", type=float, default=64.0)
    p.add_argument("--max-rounds", type=int, default=16)
    p.add_argument("--round-ttl", type=float, default=3600.0, help="seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the aggregator until interrupted."""
    from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
    from secquant.protocol.runner import serve

    token = None if args.no_auth else (args.token or os.environ.get("SECQUANT_TOKEN"))
    if token is None and not args.no_auth:
        token = secrets.token_urlsafe(32)
        print(f"secquant aggregate: bearer token (shown once): {token}", file=sys.stderr)
    config = AggregatorConfig(token=token, allow_no_auth=args.no_auth,
                              max_request_bytes=int(args.max_request_mb * 2**20), max_rounds=args.max_rounds,
                              round_ttl=args.round_ttl)
    serve(create_aggregator_app(config), args.host, args.port, certfile=args.certfile, keyfile=args.keyfile)
    return 0
