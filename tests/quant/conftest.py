"""Small models and data shared by the quantization tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from secquant.data import Dataset, load_dataset
from secquant.models import train
from secquant.nn import Poly, Square


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """These models are tiny: one thread avoids oversubscribing the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_mlp(digits: Dataset) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    return train(model, digits.x_train, digits.y_train, epochs=40)


def random_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), Square(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(12, 5), Poly([0.1, 0.5, 0.25]), nn.Linear(5, 3),
    ).eval()
