"""A pruned model shows the client nothing its dense twin does not.

The client of an encrypted model sees two things that come from the server's
layout: which inputs each output of the first layer reads (it packs them
itself) and the rotation steps it makes Galois keys for.  Both follow the
layers' geometry, never which weights are zero, so pruning a model (here with
``torch.nn.utils.prune``: half the dense weights by magnitude, a quarter of the
convolution's channels) changes nothing the client sees.

This example trains a class-based CNN, prunes a copy, compiles both under BFV
and CKKS in latency mode, and prints for each: the Galois steps, a digest of
the gather pattern, whether the two match, and whether the encrypted results
equal the integer model (BFV, bit for bit) or stay within the stated bound (CKKS).

Run: python examples/pruned_model.py [--images 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import copy
import hashlib

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

import secquant
from secquant.backends.base import run_rounds
from secquant.data import load_dataset
from secquant.training import TrainOptions, train_classifier


class SmallCNN(nn.Module):
    """conv 1 -> 8 (3x3) -> square -> fc -> square -> fc, on 8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc1 = nn.Linear(8 * 36, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = self.fc1(torch.flatten(h * h, 1))
        return self.fc2(h * h)


def pruned(model: SmallCNN) -> SmallCNN:
    """A copy with half of each dense layer's weights and a quarter of the conv's channels set to zero."""
    out = copy.deepcopy(model)
    prune.ln_structured(out.conv, "weight", amount=0.25, n=1, dim=0)
    for layer in (out.fc1, out.fc2):
        prune.l1_unstructured(layer, "weight", amount=0.5)
    for layer in (out.conv, out.fc1, out.fc2):
        prune.remove(layer, "weight")  # make the zeros permanent
    return out


def visible(em: secquant.EncryptedModel) -> tuple[tuple[int, ...], str]:
    """The Galois steps and a digest of the gather pattern: what the layout shows the client."""
    p = em.parameters()
    steps = tuple(p.get("galois_steps") or p.get("rotation_steps") or ())
    if p["scheme"] == "ckks":
        gather = em.backend.plan.stages[0].gather
        cols = None if gather is None else np.concatenate([gather.cols.reshape(-1), np.asarray(gather.rows)])
    else:
        cols = em.backend.params.layout.gather_cols
    digest = "none" if cols is None else hashlib.sha256(np.asarray(cols, dtype=np.int64).tobytes()).hexdigest()[:12]
    return steps, digest


def error(em: secquant.EncryptedModel, qm: secquant.QuantizedModel, x: np.ndarray) -> float:
    """The largest |decrypted - integer model| over ``x``'s images, one request each."""
    client = em.client()
    server = em.server(client.public_material())
    worst = 0.0
    for i in range(len(x)):
        xq = qm.quantize_input(x[i:i + 1])
        result, _ = run_rounds(client, server, client.encrypt(xq))
        got = np.asarray(client.decrypt(result), dtype=object)
        worst = max(worst, float(np.max(np.abs((got - np.asarray(qm.forward_int(xq), dtype=object)).astype(float)))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="test images, one request each")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    ds = load_dataset("digits")
    x_train, x_test = ds.images()
    torch.manual_seed(0)
    model = SmallCNN()
    train_classifier(model, x_train, ds.y_train, TrainOptions(epochs=args.epochs, lr=1e-2, seed=0))
    models = {"dense": model, "pruned": pruned(model)}
    zeros = sum(int((p == 0).sum()) for p in models["pruned"].parameters())
    print(f"pruned copy: {zeros} of {sum(p.numel() for p in model.parameters())} parameters are zero")

    failed = False
    for scheme in ("bfv", "ckks"):
        seen = {}
        for name, net in models.items():
            qm = secquant.quantize_model(net.eval(), x_train[:500], bits=8)
            em = secquant.compile(qm, scheme, mode="latency")
            seen[name] = visible(em)
            err, bound = error(em, qm, x_test[: args.images]), em.parameters().get("max_abs_error", 0.0)
            ok = err <= bound
            failed |= not ok
            print(f"{scheme} {name:<6} galois steps {len(seen[name][0]):2d}  gather pattern {seen[name][1]}  "
                  f"max error {err:.3g} <= bound {bound:.3g}: {ok}")
        same = seen["dense"] == seen["pruned"]
        failed |= not same
        print(f"{scheme}: the client sees the same layout for both: {same}")
    if failed:
        raise SystemExit("the pruned model showed the client something, or left its bound")


if __name__ == "__main__":
    main()
