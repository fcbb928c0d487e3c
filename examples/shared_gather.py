"""CKKS latency mode for a CNN: the client sends each convolution patch once, not once per channel.

In LATENCY mode the client can lay out the first convolution's patches itself
(the layer's sparsity pattern: its geometry, never a weight), so that the server
barely rotates.  Every output channel reads the same patch, so by default the
client sends each patch once (``SharedGather``) and the server spreads it over
the channels with a few rotations.  This example compiles a class-based CNN under
each ``transfer`` choice, prints the gathered layout (rows, ciphertexts,
rotations), the request bytes and the evaluation time of one image, and checks
every output against the integer model within its stated bound.

Run: python examples/shared_gather.py [--channels 16] [--images 3] [--epochs 2] [--dataset digits|mnist]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.backends.base import run_rounds
from secquant.data import load_dataset
from secquant.training import TrainOptions, train_classifier


class PatchCNN(nn.Module):
    """A convolution with many channels, a square (written ``h * h``) and a linear layer."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        kernel, stride = (7, 3) if side == 28 else (3, 1)
        out = (side - kernel) // stride + 1
        self.conv = nn.Conv2d(1, channels, kernel_size=kernel, stride=stride)
        self.fc = nn.Linear(channels * out * out, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(torch.flatten(h * h, 1))


def _one(em: secquant.EncryptedModel, qm: secquant.QuantizedModel, x: np.ndarray) -> tuple[int, float, float]:
    """Request bytes, median evaluation seconds and the largest error over ``x``'s images."""
    client = em.client()
    server = em.server(client.public_material())
    seconds, worst, size = [], 0.0, 0
    for i in range(len(x)):
        xq = qm.quantize_input(x[i:i + 1])
        request = client.encrypt(xq)
        t0 = time.perf_counter()
        result, _ = run_rounds(client, server, request)
        seconds.append(time.perf_counter() - t0)
        out = np.asarray(client.decrypt(result), dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(out - np.asarray(qm.forward_int(xq), dtype=np.float64)))))
        size = len(request)
    return size, float(np.median(seconds)), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16, help="convolution kernels")
    parser.add_argument("--images", type=int, default=3, help="test images, one request each")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    x_train, x_test = ds.images()
    torch.manual_seed(0)  # the initial weights
    model = PatchCNN(args.channels, x_train.shape[-1])
    train_classifier(model, x_train, ds.y_train, TrainOptions(epochs=args.epochs, lr=1e-2, seed=0))
    qm = secquant.quantize_model(model, x_train[:500], bits=8)

    failed = False
    for transfer in ("latency", "balanced", "bytes"):
        em = secquant.compile(qm, "ckks", mode="latency", transfer=transfer)
        p = em.parameters()
        gather = em.backend.plan.stages[0].gather
        layout = ("no gather (baby-step giant-step)" if gather is None else
                  f"{gather.cols.shape[0]} rows for {gather.rows.size} outputs, {gather.chunks} ciphertext(s), "
                  f"{len(gather.rotation_steps)} rotations")
        size, seconds, err = _one(em, qm, x_test[: args.images])
        ok = err <= p["max_abs_error"]
        failed |= not ok
        print(f"transfer={transfer:<9} {layout:<58} request {size / 1e3:7.1f} KB  evaluate {seconds:.3f} s  "
              f"max error {err:.3g} <= bound {p['max_abs_error']:.3g}: {ok}")
    if failed:
        raise SystemExit("an encrypted result left its stated bound")


if __name__ == "__main__":
    main()
