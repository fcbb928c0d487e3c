"""Train a digits classifier with secquant's one training loop, privately or not, and quantize it.

Run: python examples/train_classifier.py [--epochs 20] [--dp-epsilon 0 (off) | 2.0] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.training import DPSGD, TrainOptions, accuracy, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--dp-epsilon", type=float, default=0.0, help="train with DP-SGD at this ε (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = load_dataset("digits")
    torch.manual_seed(args.seed)  # the initial weights; the loop seeds the batch order itself
    model = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    if args.dp_epsilon > 0:
        options = TrainOptions(epochs=args.epochs, lr=0.5, batch_size=64, seed=args.seed, optimizer="sgd",
                               dp=DPSGD(epsilon=args.dp_epsilon, delta=1e-5))
    else:
        options = TrainOptions(epochs=args.epochs, lr=3e-3, batch_size=64, seed=args.seed)
    result = train_classifier(model, ds.x_train, ds.y_train, options)
    print(f"loss per epoch   {' '.join(f'{v:.3f}' for v in result.losses)}")
    if result.epsilon is not None:
        print(f"DP-SGD           (ε = {result.epsilon:.3f}, δ = 1e-5) for one training row")

    qm = secquant.quantize_model(model, ds.x_train, bits=8)
    xq = qm.quantize_input(ds.x_test)
    print(f"float accuracy   {accuracy(model, ds.x_test, ds.y_test):.4f}")
    print(f"integer accuracy {accuracy(qm.predict, ds.x_test, ds.y_test):.4f}")
    print(f"from integers    {accuracy(qm.dequantize_output, qm.forward_int(xq), ds.y_test):.4f}")


if __name__ == "__main__":
    main()
