"""``secquant serve MODEL``: the encrypted-inference service (FastAPI under uvicorn).

Tokens never go on the command line (``ps`` shows argv to every local user):

* ``--tokens FILE``: JSON lines of hashed tokens with identities, scopes and
  limits (``secquant tokens new`` writes them);
* ``--token-file FILE`` (mode 0600) or ``$SECQUANT_TOKEN``: one token with every scope;
* neither: a fresh random token, printed once on stderr;
* ``--no-auth``: the explicit, loud opt-out.

``--token VALUE`` is refused.  ``--sign-key KEY`` signs the service spec
(clients verify it with ``trusted=[KEY.pub]``); its digest is printed at start
for clients that pin it instead.  ``--release POLICY`` (``full``, ``round:K``,
``gaussian:SIGMA[:DELTA]``) is applied by the server to every result and
published in the (signed) spec.  ``--trusted PUB`` / ``--model-key FILE`` load a
signed / encrypted model (the key never appears in a URL or a log line;
``$SECQUANT_MODEL_KEY`` works too).

``--executor URL`` evaluates THROUGHPUT-mode BFV and CKKS requests on an
executor instead of in this process: ``fork:N`` (N forked processes),
``local`` (a Ray cluster started on this machine), ``ray:auto`` or
``ray://HEAD:10001`` (a running Ray cluster; ``?workers=N&in_flight=K``).
Workers get each session's public material (never a secret key) and the
model's weights.  Latency-mode, Paillier and plain requests still run in this
process.  See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from typing import Any

_TOKEN_REFUSED = ("--token puts the token in the process list (`ps` shows it to every local user) and is refused; "
                  "use --token-file FILE (mode 0600), $SECQUANT_TOKEN, or --tokens FILE (`secquant tokens new`)")


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
        "serve", help="serve encrypted inference on a quantized model over HTTP(S)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="integer model written by `secquant quantize` or QuantizedModel.save")
    p.add_argument("--scheme", default="bfv", help="bfv, ckks, paillier or plain (default bfv)")
    p.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                   help="compile option passed to secquant.compile (repeatable; VALUE parsed as JSON if it can be)")
    p.add_argument("--release", default="full", metavar="POLICY",
                   help="what clients get of each result: full, round:K (drop K low bits; plain only) or "
                        "gaussian:SIGMA[:DELTA] (noise of SIGMA output steps; plain and paillier)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)
    p.add_argument("--token-file", default=None, help="file holding one bearer token (mode 0600)")
    p.add_argument("--tokens", default=None, metavar="FILE",
                   help="JSON lines of hashed tokens with ids, scopes and limits (see `secquant tokens new`)")
    p.add_argument("--no-auth", action="store_true", help="serve without authentication (not recommended)")
    p.add_argument("--sign-key", default=None, help="Ed25519 private key (`secquant keys new`) signing the service spec")
    p.add_argument("--trusted", action="append", default=None, metavar="PUB",
                   help="refuse the model file unless signed by this public key (repeatable)")
    p.add_argument("--model-key", default=None, help="key file of an encrypted model (or $SECQUANT_MODEL_KEY)")
    p.add_argument("--certfile", default=None, help="PEM certificate: serve HTTPS")
    p.add_argument("--keyfile", default=None, help="PEM private key of --certfile")
    p.add_argument("--cache-dir", default=None, help="public-material cache, a private directory (default "
                   "$SECQUANT_CACHE_DIR or ~/.cache/secquant/keys); one others can reach is refused")
    p.add_argument("--max-request-mb", type=float, default=None,
                   help="largest request body (default: what --max-batch inputs of this model need)")
    p.add_argument("--session-ttl", type=float, default=3600.0, help="seconds")
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--max-sessions-per-token", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=1024)
    p.add_argument("--max-concurrent-requests", type=int, default=4,
                   help="request bodies read or evaluated at once (taken before a body is read)")
    p.add_argument("--publish-model", action="store_true",
                   help="also serve the whole model, weights included, at GET /v1/model (off by default: "
                        "clients build their role from GET /v1/client-spec)")
    p.add_argument("--no-publish-model", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--executor", default=None, metavar="URL",
                   help="evaluate THROUGHPUT-mode BFV/CKKS requests on an executor: fork:N, local (a Ray cluster on "
                        "this machine), ray:auto or ray://HEAD:10001 (default: in this process; latency-mode, "
                        "Paillier and plain requests always run here)")
    p.set_defaults(func=run)


def _auth(args: argparse.Namespace) -> dict[str, Any]:
    """``token=`` / ``tokens=`` / ``allow_no_auth=`` for :class:`ServiceConfig`, never from argv.

    Raises:
        ConfigError: ``--token`` on argv, or an unreadable token file.
    """
    from secquant.errors import ConfigError
    from secquant.protocol.inference.tokens import TokenTable, read_token_file

    if args.token is not None:
        raise ConfigError(_TOKEN_REFUSED)
    if args.no_auth:
        return {"allow_no_auth": True}
    out: dict[str, Any] = {}
    if args.tokens:
        out["tokens"] = TokenTable.from_file(args.tokens)
    token = read_token_file(args.token_file) if args.token_file else os.environ.get("SECQUANT_TOKEN")
    if token:
        out["token"] = token
    if not out:
        out["token"] = secrets.token_urlsafe(32)
        print(f"secquant serve: bearer token (shown once): {out['token']}", file=sys.stderr)
    return out


def _load_keywords(args: argparse.Namespace) -> dict[str, Any]:
    load: dict[str, Any] = {}
    if args.trusted:
        load["trusted"] = args.trusted
    if args.model_key:
        load["decrypt_with"] = args.model_key
    elif os.environ.get("SECQUANT_MODEL_KEY"):
        from secquant.sealing import ModelKey

        load["decrypt_with"] = ModelKey.from_env()
    return load


def run(args: argparse.Namespace) -> int:
    """Compile the model and serve until interrupted."""
    from secquant.protocol.inference import ServiceConfig, create_app, default_cache_dir
    from secquant.protocol.inference.binding import ModelBinding
    from secquant.protocol.inference.release import parse_release
    from secquant.protocol.runner import serve

    auth = _auth(args)
    mb = args.max_request_mb
    config = ServiceConfig(
        **auth, max_request_bytes=int(mb * 2**20) if mb else None, session_ttl=args.session_ttl,
        max_sessions=args.max_sessions, max_sessions_per_token=args.max_sessions_per_token, max_batch=args.max_batch,
        max_concurrent_requests=args.max_concurrent_requests, cache_dir=str(args.cache_dir or default_cache_dir()),
        publish_model=args.publish_model and not args.no_publish_model, sign_key=args.sign_key,
        executor=args.executor,
    )
    binding = ModelBinding.build(args.model, args.scheme, dict(args.option), parse_release(args.release),
                                 load=_load_keywords(args))
    app = create_app(binding, config)
    state = app.state.secquant
    print(f"secquant serve: {binding.scheme} model {binding.model_digest[:16]}... release "
          f"{binding.release.policy.label} on {'https' if args.certfile else 'http'}://{args.host}:{args.port}",
          file=sys.stderr)
    print(f"secquant serve: service spec digest {state.spec.digest} "
          f"({'signed' if args.sign_key else 'unsigned'}; clients pin it with spec_digest= / --spec-digest)",
          file=sys.stderr)
    if state.offload is not None:
        print(f"secquant serve: throughput requests run on {state.offload.executor!r}", file=sys.stderr)
    try:
        serve(app, args.host, args.port, certfile=args.certfile, keyfile=args.keyfile)
    finally:
        state.close()  # also closed at shutdown; idempotent
    return 0
