"""TenSEAL's tutorial network, trained for the CKKS overflow demonstration (deterministic, seconds)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.quant.model import QuantizedModel

__all__ = ["mnist_tutorial", "tutorial_net"]


def tutorial_net() -> nn.Sequential:
    """conv(1 -> 4, 7x7, stride 3) -> Square -> flatten -> fc 256->64 -> Square -> fc 64->10."""
    return nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.Flatten(), nn.Linear(256, 64), Square(),
                         nn.Linear(64, 10))


@lru_cache(maxsize=None)
def mnist_tutorial(epochs: int = 40) -> tuple[nn.Module, QuantizedModel, np.ndarray, np.ndarray]:
    """(float model, integer model, x_test, y_test), full-batch Adam with a fixed seed on one thread."""
    torch.set_num_threads(1)
    m = load_dataset("mnist")
    xtr, xte = m.images()
    torch.manual_seed(0)
    net = tutorial_net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.tensor(xtr), torch.tensor(m.y_train)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    qm = secquant.quantize_model(net, xtr[:512])
    return net, qm, xte, m.y_test
