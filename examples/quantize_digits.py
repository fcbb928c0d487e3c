"""Quantize a digits classifier to integers mod p and look at what it needs.

Run: python examples/quantize_digits.py [--epochs 40] [--bits 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import secquant
from secquant import models
from secquant.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--bits", type=int, default=8)
    args = parser.parse_args()

    ds = load_dataset("digits")
    model = models.train(models.digits_mlp(), ds.x_train, ds.y_train, epochs=args.epochs)
    qm = secquant.quantize_model(model, ds.x_train, bits=args.bits)

    print(f"float accuracy   {models.accuracy(model(torch.tensor(ds.x_test)), ds.y_test):.4f}")
    print(f"integer accuracy {models.accuracy(qm.predict(ds.x_test), ds.y_test):.4f}")
    print(qm.bounds().table())

    # the integer reference is exact: a saved and reloaded model gives the same integers
    xq = qm.quantize_input(ds.x_test[:5])
    with tempfile.TemporaryDirectory() as tmp:
        loaded = secquant.QuantizedModel.load(qm.save(Path(tmp) / "digits.sqm"))
    print("reloaded model identical:", bool(np.array_equal(loaded.forward_int(xq), qm.forward_int(xq))))

    # a modulus that is too small is refused, naming the layer
    try:
        secquant.quantize_model(model, ds.x_train, bits=args.bits, modulus=2**20)
    except secquant.ModulusOverflowError as err:
        print(f"modulus 2**20 refused at layer {err.layer!r}: needs {err.modulus_needed}")


if __name__ == "__main__":
    main()
