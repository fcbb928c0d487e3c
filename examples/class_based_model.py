"""A model written as a class, with ReLU, BatchNorm and a residual block, taken to an integer model.

The network is what a PyTorch user writes: ``F.relu`` inside ``forward``,
BatchNorm, a residual ``x + f(x)``, global average pooling, ``torch.flatten``.
The script trains it, replaces the ReLUs by fitted polynomials
(``approximate_activations`` rewrites the functional calls), quantizes it
exactly and with requantization, compares bounds and accuracy, lays the graph
out as a chain for the encrypted backends, and checks a save/load round trip.

Run: python examples/class_based_model.py [--data mnist] [--limit 4000] [--epochs 5] [--bits 8] [--target-bits 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import approximate_activations
from secquant.quant.linearize import linearize
from secquant.quant.requantize import RequantizeConfig
from secquant.training import TrainOptions, accuracy, train_classifier


class Block(nn.Module):
    """conv → BatchNorm → ReLU → conv → BatchNorm, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(h))


class Net(nn.Module):
    def __init__(self, channels: int = 12, classes: int = 10) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels)
        self.block = Block(channels)
        self.down = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.stem(x)))
        h = F.relu(self.down(self.block(h)))
        h = F.adaptive_avg_pool2d(h, 1)
        return self.fc(torch.flatten(h, 1))


def recalibrate_batchnorm(model: nn.Module, x: np.ndarray) -> None:
    """Recompute BatchNorm's running statistics for the final weights (they lag behind fast training)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, len(x), 500):
            model(torch.as_tensor(x[start : start + 500]))
    model.eval()


def train_models(x_tr: np.ndarray, y_tr: np.ndarray, epochs: int) -> tuple[nn.Module, nn.Module]:
    """The ReLU network, and its polynomial version fine-tuned."""
    torch.manual_seed(0)
    relu_net = Net()
    train_classifier(relu_net, x_tr, y_tr, TrainOptions(epochs=epochs, lr=1e-2))
    recalibrate_batchnorm(relu_net, x_tr)
    # ReLU has no integer form: fit degree-2 polynomials over the ranges the data reaches, then fine-tune.
    poly_net = approximate_activations(relu_net, 2, calibration=torch.as_tensor(x_tr[:500]))
    train_classifier(poly_net, x_tr, y_tr, TrainOptions(epochs=max(1, epochs // 2), lr=2e-3, seed=1))
    recalibrate_batchnorm(poly_net, x_tr)
    return relu_net, poly_net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--limit", type=int, default=4000, help="training images used")
    parser.add_argument("--test-limit", type=int, default=1000, help="test images used")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--target-bits", type=int, default=10)
    args = parser.parse_args()

    ds = load_dataset(args.data)
    x_tr, x_te = ds.images()
    x_tr, y_tr = x_tr[: args.limit], ds.y_train[: args.limit]
    x_te, y_te = x_te[: args.test_limit], ds.y_test[: args.test_limit]
    relu_net, poly_net = train_models(x_tr, y_tr, args.epochs)
    print(f"float ReLU accuracy        {accuracy(relu_net, x_te, y_te):.4f}")
    print(f"float polynomial accuracy  {accuracy(poly_net, x_te, y_te):.4f}")

    exact = secquant.quantize_model(poly_net, x_tr, bits=args.bits)
    rq = secquant.quantize_model(poly_net, x_tr, bits=args.bits,
                                 requantize=RequantizeConfig(target_bits=args.target_bits))
    for label, qm in (("exact", exact), ("requantized", rq)):
        print(f"integer accuracy, {label:11s} {accuracy(qm.predict, x_te, y_te):.4f}   "
              f"modulus {qm.bounds().bits} bits   graph: {'chain' if qm.is_chain else 'DAG'}")
    print(rq.bounds().table())

    # Backends evaluate chains: lay the DAG out as one, with the skip carried as pass-through features.
    start = time.perf_counter()
    chain = linearize(rq)
    xq = rq.quantize_input(x_te[:20])
    same = np.array_equal(chain.forward_int(xq), rq.forward_int(xq).reshape(len(xq), -1))
    print(f"linearized: {[str(op.kind) for op in chain.ops]} in {time.perf_counter() - start:.1f} s; "
          f"forward_int identical: {same}")

    with tempfile.TemporaryDirectory() as tmp:
        loaded = secquant.QuantizedModel.load(rq.save(Path(tmp) / "net.sqm"))
    print("reloaded model identical:", bool(np.array_equal(loaded.forward_int(xq), rq.forward_int(xq))))


if __name__ == "__main__":
    main()
