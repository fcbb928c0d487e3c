"""Small models and data shared by the quantization tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from secquant.data import Dataset, load_dataset
from secquant.nn import Poly, Square


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 60, lr: float = 1e-2, seed: int = 0) -> nn.Module:
    """Full-batch Adam; deterministic for a fixed seed."""
    torch.manual_seed(seed)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_mlp(digits: Dataset) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    return train(model, digits.x_train, digits.y_train, epochs=150)


def random_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), Square(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(12, 5), Poly([0.1, 0.5, 0.25]), nn.Linear(5, 3),
    ).eval()
