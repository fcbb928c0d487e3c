"""CKKS throughput with two input features per slot: half the request, the same answers within the bound.

A THROUGHPUT request holds one ciphertext per input feature, each slot one
input.  CKKS slots are complex, so by default (``complex_packing``) the client
packs two features in each slot, and the server takes the real part after its
first layer with one conjugation per output.  This example compiles a
class-based CNN both ways, prints the request bytes per image (amortized over a
full batch) and the error bound of each, then runs both on real MNIST images
and checks every output against the integer model within its bound.

Run: python examples/paired_throughput.py [--inputs 256] [--channels 4] [--epochs 3] [--dataset mnist|digits]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.training import TrainOptions, train_classifier


class TutorialCNN(nn.Module):
    """TenSEAL's tutorial shape: conv 7x7 stride 3 -> square -> linear -> square -> linear, squares written
    as functional calls."""

    def __init__(self, channels: int, side: int = 28) -> None:
        super().__init__()
        kernel, stride = (7, 3) if side == 28 else (3, 2)
        out = (side - kernel) // stride + 1
        self.conv = nn.Conv2d(1, channels, kernel_size=kernel, stride=stride)
        self.fc1 = nn.Linear(channels * out * out, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(torch.square(self.conv(x)), 1)
        h = self.fc1(h)
        return self.fc2(h * h)


def _run(em: secquant.EncryptedModel, xq: np.ndarray, ref: np.ndarray) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    seconds = time.perf_counter() - t0
    return seconds, float(np.max(np.abs(out - ref))), int(em.last_timings["request_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=256, help="images in the call")
    parser.add_argument("--channels", type=int, default=4, help="convolution kernels")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="mnist",
                        help="digits: 8x8 images and a 3x3 kernel (a smaller ring, for a quick run)")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    x_train, x_test = ds.images()
    torch.manual_seed(0)  # the initial weights
    model = TutorialCNN(args.channels, x_train.shape[-1])
    train_classifier(model, x_train, ds.y_train, TrainOptions(epochs=args.epochs, lr=1e-2, seed=0))
    qm = secquant.quantize_model(model, x_train, bits=8)
    xq = qm.quantize_input(x_test[: args.inputs])
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)

    failed = False
    for name, paired in (("one feature per slot", False), ("two features per slot", True)):
        em = secquant.compile(qm, "ckks", mode="throughput", complex_packing=paired)
        p = em.parameters()
        seconds, err, sent = _run(em, xq, ref)
        ok = err <= p["max_abs_error_int"]
        failed |= not ok or p["paired_inputs"] != paired
        print(f"{name:<22} N={p['poly_degree']} primes={p['coeff_modulus_bits']}  "
              f"request {p['wire']['request_bytes_per_input_amortized'] / 1e3:6.1f} KB per image "
              f"({sent / 1e6:.1f} MB sent)  {seconds:5.1f} s  max error {err:.3g} <= bound "
              f"{p['max_abs_error_int']:.3g}: {ok}")
    if failed:
        raise SystemExit("an encrypted result left its stated bound")


if __name__ == "__main__":
    main()
