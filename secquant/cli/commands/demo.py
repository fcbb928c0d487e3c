"""``secquant demo``: the main job, on data that ships with the dependencies."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="quantize a real model and run it on encrypted inputs"
    )
    p.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--scheme", choices=["bfv", "ckks", "paillier", "plain", "none"], default="bfv")
    p.add_argument("--limit", type=int, default=256, help="encrypted test inputs")
    p.add_argument("--chunk", type=int, default=128, help="inputs per encrypted batch when the scheme packs no batch")
    p.add_argument("--epochs", type=int, default=6)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from secquant.demo import DemoConfig, run_demo
    from secquant.errors import ConfigError

    if args.limit < 1 or args.chunk < 1 or args.epochs < 1:
        raise ConfigError("--limit, --chunk and --epochs must be positive")
    result = run_demo(DemoConfig(data=args.data, bits=args.bits, scheme=args.scheme, limit=args.limit,
                                 chunk=args.chunk, epochs=args.epochs))
    return 0 if result.get("bit_exact", True) or args.scheme == "ckks" else 1
