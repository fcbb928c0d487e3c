"""``secquant infer MODEL INPUT --scheme S``: encrypted inference, locally or against a server.

Locally it compiles the saved integer model for the scheme, encrypts the
inputs (with a progress bar), evaluates, decrypts, and prints predictions and
timings.  With ``--server URL`` it runs one remote session through
:func:`secquant.protocol.inference.client.infer_remote` instead: the token
comes from ``--token-file`` or ``$SECQUANT_TOKEN`` (``--token`` still works,
loudly deprecated: ``ps`` shows it); ``--trust PUB`` / ``--spec-digest HEX``
authenticate the service spec; ``--min-security`` / ``--allow-insecure`` set
the client's floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def register(subparsers: Any) -> None:
    """Add the ``infer`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "infer",
        help="run a saved integer model on encrypted inputs",
        description="Encrypt inputs, evaluate the integer model homomorphically, decrypt, and print "
        "predictions and timings.  INPUT is a .npy/.npz of floats (no pickle); or use --data.",
    )
    p.add_argument("model", help="integer model written by `secquant quantize` (.sqm / .npz)")
    p.add_argument("input", nargs="?", help=".npy/.npz of float inputs, shape (n, ...)")
    p.add_argument("--data", choices=["digits", "mnist", "breast_cancer"], help="use a built-in test set instead")
    p.add_argument("--limit", type=int, help="use only the first N inputs")
    p.add_argument("--scheme", default="bfv", choices=["bfv", "ckks", "paillier", "plain"])
    p.add_argument("--mode", choices=["latency", "throughput"], help="slot layout (BFV/CKKS; default: the backend's)")
    p.add_argument("--server", metavar="URL", help="evaluate on a secquant server instead of locally")
    p.add_argument("--token", help=argparse.SUPPRESS)  # deprecated: shows in `ps`
    p.add_argument("--token-file", help="file holding the bearer token for --server (default $SECQUANT_TOKEN)")
    p.add_argument("--trust", action="append", default=None, metavar="PUB",
                   help="operator public key whose signature on the service spec is required (repeatable)")
    p.add_argument("--spec-digest", help="pinned SHA-256 of the service spec (printed by `secquant serve`)")
    p.add_argument("--min-security", type=int, default=128, help="least security in bits to accept (default 128)")
    p.add_argument("--allow-insecure", action="store_true",
                   help="accept parameters below --min-security, the plain backend included (test rigs only)")
    p.add_argument("--allow-insecure-transport", action="store_true",
                   help="accept plain http:// to a host that is not loopback (test rigs only)")
    p.add_argument("--ca-bundle", help="CA bundle that verifies the server's certificate")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while encrypting")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _remote(args: argparse.Namespace, x: Any) -> tuple[Any, dict[str, float], dict[str, Any]]:
    from secquant.errors import SecquantError

    try:
        from secquant.protocol.inference.client import infer_remote
    except ImportError as exc:
        raise SecquantError(f"remote inference is unavailable: secquant.protocol.inference.client.infer_remote "
                            f"cannot be imported ({exc})") from exc
    from secquant.protocol.inference.floors import SecurityFloor
    from secquant.protocol.inference.tokens import read_token_file

    if args.token:
        print("secquant infer: DEPRECATED AND UNSAFE: --token shows the token in the process list (`ps`); "
              "use --token-file FILE or $SECQUANT_TOKEN", file=sys.stderr)
    token = read_token_file(args.token_file) if args.token_file else args.token
    options = {"trusted": args.trust, "spec_digest": args.spec_digest,
               "floor": SecurityFloor(args.min_security, args.allow_insecure),
               "allow_insecure_transport": args.allow_insecure_transport}
    try:
        result = infer_remote(args.server, x, token=token, model=args.model, verify=args.ca_bundle or True,
                              **options)
    except SecquantError:
        raise
    except Exception as exc:  # network failures surface as the HTTP library's own errors
        raise SecquantError(f"remote inference against {args.server} failed: {type(exc).__name__}: {exc}") from exc
    return np.asarray(result.scores), dict(result.timings), dict(result.info)


def _local(args: argparse.Namespace, qm: Any, x: Any, info: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """Compile, make keys, encrypt, evaluate and decrypt in this process; bit-exactness goes to ``info``."""
    import secquant
    from secquant.backends.base import run_rounds
    from secquant.progress import progress_bar

    options = {"mode": args.mode} if args.mode else {}
    t0 = time.perf_counter()
    em = secquant.compile(qm, args.scheme, **options)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client = em.client()
    server = em.server(client.public_material())
    keys_s = time.perf_counter() - t0
    xq = qm.quantize_input(x)
    t0 = time.perf_counter()
    with progress_bar("encrypting", disabled=args.no_progress or args.json) as callback:
        payload = client.encrypt(xq, progress=callback)
    t1 = time.perf_counter()
    result, rounds = run_rounds(client, server, payload)  # interactive schemes take several
    t2 = time.perf_counter()
    ints = client.decrypt(result)
    t3 = time.perf_counter()
    scores = qm.dequantize_output(ints)
    timings = {"compile": compile_s, "keys": keys_s, "encrypt": t1 - t0, "evaluate": t2 - t1,
               "decrypt": t3 - t2, "rounds": float(rounds), "request_bytes": float(len(payload)),
               "response_bytes": float(len(result))}
    if args.scheme in ("bfv", "paillier", "plain"):
        info["bit_exact"] = bool(np.array_equal(np.asarray(ints, dtype=object),
                                                np.asarray(qm.forward_int(xq), dtype=object)))
    return scores, timings


def run(args: argparse.Namespace) -> int:
    """Load, encrypt, evaluate, decrypt, print."""
    from secquant.cli.io import load_inputs
    from secquant.errors import ConfigError
    from secquant.quant.model import QuantizedModel

    if (args.token or args.token_file) and not args.server:
        raise ConfigError("--token-file only makes sense with --server")
    qm = QuantizedModel.load(args.model)
    x, y = load_inputs(args.input, args.data, limit=args.limit, images=len(qm.input_shape) == 3)
    x = x.reshape(x.shape[0], *qm.input_shape) if x.ndim == 2 and len(qm.input_shape) > 1 else x
    info: dict[str, Any] = {"scheme": args.scheme, "n": int(x.shape[0])}
    if args.server:
        scores, timings, server_info = _remote(args, x)
        info["scheme"] = server_info.get("scheme", args.scheme)  # the server's scheme, not the flag's
    else:
        scores, timings = _local(args, qm, x, info)
    predictions = np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)
    info["predictions"] = [int(v) for v in predictions]
    info["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    if y is not None:
        info["accuracy"] = float(np.mean(predictions == np.asarray(y)[: len(predictions)]))
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"predictions ({len(predictions)}): {' '.join(map(str, predictions[:50]))}"
          + (" ..." if len(predictions) > 50 else ""))
    if "accuracy" in info:
        print(f"accuracy: {info['accuracy']:.4f}")
    if "bit_exact" in info:
        print(f"bit-exact vs qm.forward_int: {info['bit_exact']}")
    for key, value in timings.items():
        if key.endswith("bytes"):
            print(f"{key:>15}: {value:,.0f} bytes")
        elif key == "rounds":
            print(f"{key:>15}: {int(value)}")
        else:
            print(f"{key:>15}: {value:.3f} s")
    return 0
