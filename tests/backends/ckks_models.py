"""Trained float models and their integer versions for the CKKS tests (deterministic, seconds to train)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.quant.config import QuantConfig
from secquant.quant.model import QuantizedModel
from secquant.tuning.train import TrainConfig, train

torch.set_num_threads(1)

__all__ = ["digits_mlp", "mnist_cnn", "mnist_tutorial"]


def _fit(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> nn.Module:
    train(net, list(net.parameters()), x, y, TrainConfig(epochs=epochs, lr=lr, seed=0), modules=(net,))
    return net.eval()


@lru_cache(maxsize=None)
def digits_mlp() -> tuple[nn.Module, QuantizedModel, np.ndarray, np.ndarray]:
    """Digits MLP 64 -> 32 -> Square -> 10: (float model, integer model, x_test, y_test)."""
    d = load_dataset("digits")
    torch.manual_seed(0)
    net = _fit(nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10)), d.x_train, d.y_train, 30, 3e-3)
    qm = secquant.quantize_model(net, d.x_train, config=QuantConfig(input_range=(0.0, 1.0)))
    return net, qm, d.x_test, d.y_test


@lru_cache(maxsize=None)
def mnist_cnn() -> tuple[nn.Module, QuantizedModel, np.ndarray, np.ndarray]:
    """MNIST CNN conv(4, 7x7, stride 3) -> Square -> avgpool 2 -> linear 64 -> 10."""
    m = load_dataset("mnist")
    xtr, xte = m.images()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    net = _fit(net, xtr, m.y_train, 10, 3e-3)
    qm = secquant.quantize_model(net, xtr, config=QuantConfig(input_range=(0.0, 1.0)))
    return net, qm, xte, m.y_test


@lru_cache(maxsize=None)
def mnist_tutorial() -> tuple[nn.Module, QuantizedModel, np.ndarray, np.ndarray]:
    """TenSEAL's tutorial network: conv(4, 7x7, stride 3) -> Square -> fc 256->64 -> Square -> fc 64->10."""
    m = load_dataset("mnist")
    xtr, xte = m.images()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.Flatten(), nn.Linear(256, 64), Square(),
                        nn.Linear(64, 10))
    net = _fit(net, xtr, m.y_train, 10, 1e-3)
    qm = secquant.quantize_model(net, xtr, config=QuantConfig(input_range=(0.0, 1.0)))
    return net, qm, xte, m.y_test
