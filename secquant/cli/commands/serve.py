"""``secquant serve MODEL``: the encrypted-inference service (FastAPI under uvicorn).

The token comes from ``--token``, else ``$SECQUANT_TOKEN``, else a fresh random
one printed once on stderr; ``--no-auth`` is the explicit, loud opt-out.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from typing import Any


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options are KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="serve encrypted inference on a quantized model over HTTP(S)")
    p.add_argument("model", help="integer model written by `secquant quantize` or QuantizedModel.save")
    p.add_argument("--scheme", default="bfv", help="bfv, ckks, paillier or plain (default bfv)")
    p.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="compile option passed to secquant.compile (repeatable; VALUE parsed as JSON if it can be)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=None, help="bearer token (default: $SECQUANT_TOKEN or a random one)")
    p.add_argument("--no-auth", action="store_true", help="serve without authentication (not recommended)")
    p.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    p.add_argument("--keyfile", default=None, help="PEM private key of --certfile")
    p.add_argument("--cache-dir", default=None, help="public-material cache (default $SECQUANT_CACHE_DIR or "
                   "~/.cache/secquant/keys)")
    p.add_argument("--max-request-mb", type=float, default=256.0)
    p.add_argument("--session-ttl", type=float, default=3600.0, help="seconds")
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=1024)
    p.add_argument("--publish-model", action="store_true",
                   help="also serve the whole model, weights included, at GET /v1/model (off by default: "
                        "clients build their role from GET /v1/client-spec)")
    p.add_argument("--no-publish-model", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compile the model and serve until interrupted."""
    from secquant.protocol.inference import ServiceConfig, create_app, default_cache_dir
    from secquant.protocol.inference.binding import ModelBinding
    from secquant.protocol.runner import serve

    token = None if args.no_auth else (args.token or os.environ.get("SECQUANT_TOKEN"))
    if token is None and not args.no_auth:
        token = secrets.token_urlsafe(32)
        print(f"secquant serve: bearer token (shown once): {token}", file=sys.stderr)
    config = ServiceConfig(
        token=token, allow_no_auth=args.no_auth, max_request_bytes=int(args.max_request_mb * 2**20),
        session_ttl=args.session_ttl, max_sessions=args.max_sessions, max_batch=args.max_batch,
        cache_dir=str(args.cache_dir or default_cache_dir()), publish_model=args.publish_model and not args.no_publish_model,
    )
    binding = ModelBinding.build(args.model, args.scheme, dict(args.option))
    print(f"secquant serve: {binding.scheme} model {binding.model_digest[:16]}... on "
          f"{'https' if args.certfile else 'http'}://{args.host}:{args.port}", file=sys.stderr)
    serve(create_app(binding, config), args.host, args.port, certfile=args.certfile, keyfile=args.keyfile)
    return 0
