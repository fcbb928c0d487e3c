"""``secquant inspect``: layers, scales, bounds and the modulus of a saved integer model."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``inspect`` command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "inspect", help="show an integer model's layers, scales, bounds and modulus"
    )
    p.add_argument("model", help="integer model written by `secquant quantize` or QuantizedModel.save")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load (verifying the digest) and describe the model."""
    from secquant.quant.model import QuantizedModel

    qm = QuantizedModel.load(args.model)
    summary = qm.summary()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    iq = summary["input"]
    print(f"input  shape {tuple(qm.input_shape)}  u = round({iq['scale']:.6g}·x + {iq['offset']})  "
          f"in [{iq['lo']}, {iq['hi']}]  rounding {iq['rounding']}, out of range: {iq['on_overflow']}")
    for layer in summary["layers"]:
        extras = {k: v for k, v in layer.items() if k not in ("name", "kind")}
        print(f"layer  {layer['name']:<12} {layer['kind']:<10} {extras}")
    scale = summary["output_scale"]
    print(f"output shape {tuple(qm.output_shape)}  scores = y / scale, scale in [{scale['min']:.6g}, {scale['max']:.6g}]")
    print(qm.bounds().table())
    print(f"modulus {qm.modulus}  multiplicative depth {qm.multiplicative_depth}")
    return 0
