"""``secquant quantize``: float model file and calibration data in, integer model out."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``quantize`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "quantize",
        help="quantize a float model to an integer model mod p",
        description="Quantize a float model file (see secquant.torchio.save_float_model) to an integer "
        "model, print its bounds, and save it as a digest-checked artifact.",
    )
    p.add_argument("model", help="float model file written by secquant.torchio.save_float_model")
    p.add_argument("--calibration", help=".npy/.npz of calibration inputs (shape n x ...)")
    p.add_argument("--data", choices=["digits", "breast_cancer", "mnist"], help="calibrate on a built-in training set")
    p.add_argument("--bits", type=int, default=8, help="weight bits (default 8)")
    p.add_argument("--input-bits", type=int, help="input bits (default: --bits)")
    p.add_argument("--input-range", type=float, nargs=2, metavar=("LO", "HI"), help="known input range")
    p.add_argument("--weight-method", choices=["minmax", "percentile", "mse"], default="minmax")
    p.add_argument("--modulus", type=int, help="plaintext modulus to check against (default: the smallest that fits)")
    p.add_argument("--out", required=True, help="where to write the integer model (.sqm)")
    p.add_argument("--json", action="store_true", help="print the bound report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Quantize, save, and print the bound table."""
    from torch import nn

    from secquant.cli.io import load_inputs
    from secquant.quant.calibration import MinMax, MSEOptimal, Percentile
    from secquant.quant.config import QuantConfig
    from secquant.quant.convert import quantize_model
    from secquant.torchio import load_float_model

    model = load_float_model(args.model)
    convolutional = any(isinstance(m, (nn.Conv2d, nn.AvgPool2d)) for m in model)
    x, _ = load_inputs(args.calibration, args.data, split="train", images=convolutional)
    method = {"minmax": MinMax(), "percentile": Percentile(), "mse": MSEOptimal()}[args.weight_method]
    cfg = QuantConfig(bits=args.bits, input_bits=args.input_bits, weight_method=method,
                      input_range=tuple(args.input_range) if args.input_range else None)
    qm = quantize_model(model, x, config=cfg, modulus=args.modulus)
    path = qm.save(args.out)
    if args.json:
        print(json.dumps(qm.bounds().to_dict(), indent=2))
    else:
        print(qm.bounds().table())
        print(f"saved {path} (modulus {qm.modulus}, depth {qm.multiplicative_depth})")
    return 0
