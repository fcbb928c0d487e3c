"""Tune an MLP for encrypted inference on MNIST: polynomial activations, parameter search, QAT.

    python examples/tune_mnist.py                      # the full run (~30 s on one core)
    python examples/tune_mnist.py --train-limit 600 --test-limit 200 --epochs 2 --qat-epochs 1

Prints the accuracy at every stage (float ReLU -> polynomial -> quantized ->
modular -> encrypted), the modulus of uniform 8-bit quantization and the
modulus of the configuration the search chose, and checks that the QAT model
and its integer model predict the same class for every test image.
"""

from __future__ import annotations

import argparse
import sys

import torch

from secquant.tuning.pipeline import PipelineConfig, run_pipeline


def main(argv: list[str] | None = None) -> int:
    """Run the example; returns 0 when QAT and the integer model agree on every image."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--qat-epochs", type=int, default=10)
    parser.add_argument("--qat-bits", type=int, default=4)
    parser.add_argument("--encrypted", type=int, default=0, help="test images to run under BFV (if installed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the models are small)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = PipelineConfig(
        dataset=args.dataset, hidden=(args.hidden,), train_limit=args.train_limit, test_limit=args.test_limit,
        validation=args.validation, calibration=min(1000, (args.train_limit or 4000) - args.validation),
        float_epochs=args.epochs, finetune_epochs=args.finetune_epochs, qat_epochs=args.qat_epochs,
        qat_bits=args.qat_bits, encrypted=args.encrypted,
    )
    result = run_pipeline(cfg)
    print(result.summary())
    b = result.search.best
    print(f"\nmodulus: uniform 8-bit {result.ptq8_modulus} vs searched {b.modulus} "
          f"({b.modulus / result.ptq8_modulus:.3g} of it)")
    return 0 if result.qat_identical else 1


if __name__ == "__main__":
    sys.exit(main())
