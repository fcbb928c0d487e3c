"""A BFV ring sized for the call: fewer bytes, less memory and time for a few hundred inputs.

BFV throughput mode packs one input per slot, N inputs per batch.  By default
the planner picks the ring that is cheapest per input of *full* batches; a call
of 256 inputs pays for all N slots anyway.  ``inputs_per_call`` tells the
planner how many inputs a call carries, and it picks the ring cheapest for
that call.  Both choices are made from the bounds alone, before any key: this
example prints them side by side, then runs the sized one and checks it bit
for bit against the integer model.

Run: python examples/sized_ring.py [--inputs 256] [--channels 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.training import TrainOptions, train_classifier


class SmallCNN(nn.Module):
    """conv 5x5 stride 2 -> square -> average pool 2 -> linear, written the way users write it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=5, stride=2)
        self.act = Square()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(channels * 36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


def _row(name: str, p: dict) -> str:
    return (f"{name:<22} N={p['poly_degree']:<6} CRT primes={len(p['plain_moduli'])}  coefficient bits="
            f"{sum(p['coeff_modulus_bits'])}  request {p['request_bytes_per_batch'] / 1e6:7.1f} MB per batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=256, help="inputs in the call")
    parser.add_argument("--channels", type=int, default=4, help="convolution kernels")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    ds = load_dataset("mnist")
    x_train, x_test = ds.images()
    torch.manual_seed(0)  # the initial weights
    model = SmallCNN(args.channels)
    train_classifier(model, x_train, ds.y_train, TrainOptions(epochs=args.epochs, lr=1e-2, seed=0))
    qm = secquant.quantize_model(model, x_train, bits=8)

    full = secquant.compile(qm, "bfv", mode="throughput")
    sized = secquant.compile(qm, "bfv", mode="throughput", inputs_per_call=args.inputs)
    print(_row("full batches", full.parameters()))
    print(_row(f"{args.inputs} inputs per call", sized.parameters()))

    xq = qm.quantize_input(x_test[: args.inputs])
    t0 = time.perf_counter()
    out = sized.forward_int(xq)
    seconds = time.perf_counter() - t0
    exact = bool(np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sized ring: {args.inputs} inputs in {seconds:.1f} s (keys included), bit-exact: {exact}, "
          f"request {sized.last_timings['request_bytes'] / 1e6:.1f} MB, process peak {peak_mb:.0f} MB")
    if not exact:
        raise SystemExit("the encrypted result differs from the integer model")


if __name__ == "__main__":
    main()
