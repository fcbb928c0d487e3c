"""Shared quantized models for the encrypted-backend tests (BFV, CKKS, Paillier).

Every fixture trains a tiny torch model for a few full-batch Adam epochs with a
fixed seed on real data, quantizes it with secquant, and returns a
:class:`TrainedModel`.  Session-scoped: each trains once per test run (a few
seconds in total).  Deterministic: ``torch.manual_seed`` and a single thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained float model, its quantized version and held-out test data."""

    name: str
    model: nn.Module
    qm: secquant.QuantizedModel
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]


def _train(model: nn.Module, x: NDArray[np.float32], y: NDArray[np.int64], epochs: int, lr: float = 1e-2) -> nn.Module:
    torch.set_num_threads(1)
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    return model


def make_digits_mlp(bits: int = 8, hidden: int = 32, epochs: int = 60) -> TrainedModel:
    """Digits 64 -> hidden -> Square -> 10."""
    ds = load_dataset("digits")
    torch.manual_seed(0)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = _train(nn.Sequential(nn.Linear(64, hidden), Square(), nn.Linear(hidden, 10)), x, ds.y_train, epochs)
    qm = secquant.quantize_model(model, x[:512], bits=bits)
    return TrainedModel("digits_mlp", model, qm, ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)


def make_mnist_mlp(bits: int = 8, hidden: int = 32, epochs: int = 30) -> TrainedModel:
    """MNIST 784 -> hidden -> Square -> 10."""
    ds = load_dataset("mnist")
    torch.manual_seed(0)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = _train(nn.Sequential(nn.Linear(784, hidden), Square(), nn.Linear(hidden, 10)), x, ds.y_train, epochs)
    qm = secquant.quantize_model(model, x[:512], bits=bits, config=None)
    return TrainedModel("mnist_mlp", model, qm, ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)


def make_mnist_cnn(bits: int = 8, channels: int = 2, epochs: int = 30) -> TrainedModel:
    """MNIST 1x28x28: conv 5x5 stride 2 -> Square -> avgpool 2 -> flatten -> linear 10."""
    ds = load_dataset("mnist")
    torch.manual_seed(0)
    x_train, x_test = ds.images()
    model = nn.Sequential(nn.Conv2d(1, channels, 5, stride=2), Square(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(channels * 36, 10))
    model = _train(model, x_train, ds.y_train, epochs)
    qm = secquant.quantize_model(model, x_train[:512], bits=bits)
    return TrainedModel("mnist_cnn", model, qm, x_test, ds.y_test)


def make_digits_deep(bits: int = 8, epochs: int = 60) -> TrainedModel:
    """Digits 64 -> 16 -> Square -> 16 -> Square -> 10: a bound far past one 60-bit prime (CRT)."""
    ds = load_dataset("digits")
    torch.manual_seed(1)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 16), Square(), nn.Linear(16, 10))
    model = _train(model, x, ds.y_train, epochs, lr=5e-3)
    qm = secquant.quantize_model(model, x[:512], bits=bits)
    return TrainedModel("digits_deep", model, qm, ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)


@pytest.fixture(scope="session")
def digits_mlp() -> TrainedModel:
    """Digits MLP with one Square, 8-bit."""
    return make_digits_mlp()


@pytest.fixture(scope="session")
def mnist_mlp() -> TrainedModel:
    """MNIST MLP with one Square, 8-bit."""
    return make_mnist_mlp()


@pytest.fixture(scope="session")
def mnist_cnn() -> TrainedModel:
    """MNIST CNN: conv -> Square -> avgpool -> linear, 8-bit."""
    return make_mnist_cnn()


@pytest.fixture(scope="session")
def digits_deep() -> TrainedModel:
    """Digits MLP with two Squares, 8-bit; its bound needs several CRT primes."""
    return make_digits_deep()
