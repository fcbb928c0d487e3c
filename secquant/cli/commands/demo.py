"""``secquant demo``: the main job, on data that ships with the dependencies.

``secquant demo --web`` starts the browser demo instead (:mod:`secquant.web`):
the inference servers and a local client app that holds the secret keys,
then prints the URL to open.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="quantize a real model and run it on encrypted inputs (--web: in the browser)"
    )
    p.add_argument("--data", choices=["mnist", "digits"], default=None,
                   help="data set and model (default mnist; with --web: both)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--scheme", choices=["bfv", "ckks", "paillier", "plain", "none"], default=None,
                   help="default bfv; with --web: bfv, ckks and paillier")
    p.add_argument("--limit", type=int, default=256, help="encrypted test inputs")
    p.add_argument("--chunk", type=int, default=128, help="inputs per encrypted batch when the scheme packs no batch")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 6; with --web: mnist 8, digits 20)")
    web = p.add_argument_group("browser demo")
    web.add_argument("--web", action="store_true", help="serve the demo page on 127.0.0.1 and print its URL")
    web.add_argument("--port", type=int, default=8765, help="port of the page (0: a free one; default 8765)")
    web.add_argument("--server", action="append", default=[], metavar="URL",
                     help="use this remote inference server instead of starting one (repeatable; token from "
                          "$SECQUANT_TOKEN)")
    web.add_argument("--keep-keys", action="store_true", help="keep the key files, models and logs on exit")
    web.add_argument("--models", metavar="DIR", help="cache the trained models in DIR across runs")
    p.set_defaults(func=run)


def _run_web(args: argparse.Namespace) -> int:
    from secquant.errors import ConfigError
    from secquant.web.choices import DemoModel, DemoScheme
    from secquant.web.launcher import WebDemoConfig, run_web_demo

    if args.scheme in ("plain", "none"):
        raise ConfigError(f"the web demo runs bfv, ckks or paillier, not --scheme {args.scheme}")
    models = (DemoModel(args.data),) if args.data else tuple(DemoModel)
    schemes = (DemoScheme(args.scheme),) if args.scheme else tuple(DemoScheme)
    return run_web_demo(WebDemoConfig(port=args.port, servers=tuple(args.server), keep_keys=args.keep_keys,
                                      models_dir=args.models, models=models, schemes=schemes, bits=args.bits,
                                      epochs=args.epochs))


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from secquant.errors import ConfigError

    if args.web:
        return _run_web(args)
    if args.server or args.keep_keys or args.models or args.port != 8765:
        raise ConfigError("--port, --server, --keep-keys and --models go with --web")
    from secquant.demo import DemoConfig, run_demo

    epochs = 6 if args.epochs is None else args.epochs
    if args.limit < 1 or args.chunk < 1 or epochs < 1:
        raise ConfigError("--limit, --chunk and --epochs must be positive")
    scheme = args.scheme or "bfv"
    result = run_demo(DemoConfig(data=args.data or "mnist", bits=args.bits, scheme=scheme, limit=args.limit,
                                 chunk=args.chunk, epochs=epochs))
    return 0 if result.get("bit_exact", True) or scheme == "ckks" else 1
