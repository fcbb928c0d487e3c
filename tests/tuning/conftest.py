"""Small, fast models on sklearn digits shared by the tuning tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from secquant.data import Dataset, load_dataset
from secquant.nn import approximate_activations
from secquant.tuning.train import TrainConfig, mlp, train


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
def relu_mlp(digits: Dataset) -> nn.Module:
    model = mlp(64, (24,), 10, seed=0)
    train(model, list(model.parameters()), digits.x_train, digits.y_train, TrainConfig(epochs=12, lr=5e-3, batch_size=128),
          modules=(model,))
    return model


@pytest.fixture(scope="session")
def poly_mlp(digits: Dataset, relu_mlp: nn.Module) -> nn.Module:
    model = approximate_activations(relu_mlp, 2, calibration=digits.x_train[:300])
    train(model, list(model.parameters()), digits.x_train, digits.y_train, TrainConfig(epochs=3, lr=1e-3, batch_size=128),
          modules=(model,))
    return model


def poly_cnn(seed: int = 0) -> nn.Module:
    """Conv2d, Square, AvgPool2d, Flatten, Linear, learnable Poly, Linear: every layer QAT must mirror."""
    from secquant.nn import Poly, Square

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=1, padding=1), Square(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(64, 16), Poly([0.2, 0.5, 0.1], learnable=True), nn.Linear(16, 10),
    )
