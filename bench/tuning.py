"""Accuracy against bits and modulus on MNIST: post-training quantization vs QAT, and the search.

One float ReLU MLP is trained, its activations replaced by fitted degree-2
polynomials and fine-tuned; then for every bit width the same polynomial model
is quantized directly (PTQ) and after QAT at that width.  Accuracy is on the
1,000 untouched test images; ``mod bits`` is ``ceil(log2(qm.modulus_needed))``;
``identical`` says whether the QAT model and its integer model predict the same
class for every test image.  Last, ``secquant.tune`` searches for the cheapest
configuration within 1 point of float on a held-out validation split.

Prints a table and writes ``bench/results/tuning.json``.

Run:  python bench/tuning.py [--bits 8,7,6,5,4,3] [--qat-epochs 10] [--hidden 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

from secquant.quant.config import QuantConfig
from secquant.quant.convert import quantize_model
from secquant.training import accuracy, predictions
from secquant.tuning import MaxAccuracyDrop, SearchSpace, tune
from secquant.tuning.pipeline import PipelineConfig, prepare, qat


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", default="8,7,6,5,4,3")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--qat-epochs", type=int, default=10)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the models are small)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bits = [int(b) for b in args.bits.split(",")]
    cfg = PipelineConfig(hidden=(args.hidden,), float_epochs=args.epochs, qat_epochs=args.qat_epochs,
                         train_limit=args.train_limit, test_limit=args.test_limit)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    xt, yt = prep.x_test, prep.y_test
    rows = [
        {"method": "float ReLU", "bits": "-", "accuracy": 100 * accuracy(prep.float_model, xt, yt)},
        {"method": "float poly", "bits": "-", "accuracy": 100 * accuracy(prep.poly_model, xt, yt)},
    ]
    ptq8 = None
    for b in bits:
        qm = quantize_model(prep.poly_model, prep.calibration, config=QuantConfig(bits=b, input_range=prep.input_range))
        ptq8 = qm.modulus_needed if b == 8 else ptq8
        rows.append({"method": "PTQ", "bits": b, "accuracy": 100 * accuracy(qm.predict, xt, yt),
                     "mod_bits": (qm.modulus_needed - 1).bit_length(), "modulus": str(qm.modulus_needed)})
    for b in bits:
        t = time.perf_counter()
        fq, qm = qat(prep, b, cfg.qat_epochs)
        fq_pred, qm_pred = predictions(fq, xt), predictions(qm.predict, xt)
        rows.append({"method": "QAT", "bits": b, "accuracy": 100 * float(np.mean(qm_pred == yt)),
                     "mod_bits": (qm.modulus_needed - 1).bit_length(), "modulus": str(qm.modulus_needed),
                     "identical": bool(np.array_equal(fq_pred, qm_pred)), "seconds": time.perf_counter() - t})
    found = tune(prep.poly_model, prep.calibration, (prep.x_val, prep.y_val), MaxAccuracyDrop(1.0),
                 space=SearchSpace(input_ranges=(prep.input_range,)))
    best = found.best
    rows.append({"method": f"search ({best.describe()})", "bits": best.config.bits,
                 "accuracy": 100 * accuracy(found.model.predict, xt, yt), "mod_bits": best.modulus_bits,
                 "modulus": str(best.modulus)})
    columns = ["method", "bits", "accuracy", "mod_bits", "identical", "seconds"]
    print(table(rows, columns))
    if ptq8 is not None:
        print(f"\nmodulus: uniform 8-bit PTQ {ptq8} ({(ptq8 - 1).bit_length()} bits); searched {best.modulus} "
              f"({best.modulus_bits} bits) = 2^{np.log2(best.modulus / ptq8):.1f} of it; "
              f"search validation accuracy {100 * best.accuracy:.2f} vs float {100 * found.float_accuracy:.2f}")
    path = write_json("tuning", {"config": vars(args), "rows": rows, "search_trials": found.to_dict()["trials"],
                                 "ptq8_modulus": str(ptq8), "seconds": time.perf_counter() - t0})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
