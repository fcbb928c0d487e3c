"""Writes the version-1 compatibility fixture; it was run with the code of commit 92a1e70:

    git worktree add /tmp/base 92a1e70 && PYTHONPATH=/tmp/base python tests/quant/data/make_chain_v1.py tests/quant/data
"""
import json
import sys

import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Poly, Square


def model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), Square(), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Linear(12, 5), Poly([0.1, 0.5, 0.25]), nn.Linear(5, 3))
    with torch.no_grad():
        m[1].running_mean.copy_(torch.tensor([0.1, -0.2, 0.05])); m[1].running_var.copy_(torch.tensor([0.5, 1.5, 2.0]))
    return m.eval()


def main(out: str) -> None:
    x_tr, x_te = load_dataset("digits").images()
    qm = secquant.quantize_model(model(), x_tr[:200], bits=6)
    qm.save(out + "/chain_v1.sqm")
    xq = qm.quantize_input(x_te[:6])
    with open(out + "/chain_v1.json", "w") as f:
        json.dump({"xq": xq.tolist(), "y": qm.forward_int(xq).tolist(), "modulus": qm.modulus}, f)
    print(qm.modulus, [op.kind for op in qm.ops])


if __name__ == "__main__":
    main(sys.argv[1])
