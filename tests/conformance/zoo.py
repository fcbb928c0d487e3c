"""Shared helpers of the conformance matrix: train the zoo once, quantize each variant once.

Used by ``tests/test_conformance.py`` and ``bench/model_zoo.py``.  Sizes are
small (a few hundred examples, two or three epochs): the matrix checks that
every scheme reproduces the integer oracle, not that the models are good.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.models import ZOO, ZooName, train, zoo_model
from secquant.quant.model import QuantizedModel
from secquant.quant.requantize_config import RequantizeConfig

#: (train examples, epochs, learning rate) per model: enough to separate the classes.
TRAIN_SIZES: dict[ZooName, tuple[int, int, float]] = {
    ZooName.LOGISTIC: (400, 20, 3e-3),
    ZooName.DIGITS_MLP: (800, 10, 3e-3),
    ZooName.TUTORIAL_CNN: (600, 2, 3e-3),
    ZooName.LENET5: (600, 2, 3e-3),
    ZooName.RESNET: (600, 2, 1e-2),
    ZooName.DEEP_MLP: (800, 10, 3e-3),
}


class Quant(enum.Enum):
    """Which integer model of a zoo network: exact (``requantize=None``) or requantized."""

    EXACT = "exact"
    REQUANT = "requant"


@dataclass(frozen=True)
class Trained:
    """A trained class-based zoo network with its data (flat rows or images)."""

    name: ZooName
    model: nn.Module
    x_train: NDArray[np.float32]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]


@functools.cache
def _dataset(name: str):
    return load_dataset(name)


def trained(name: ZooName, n_train: int | None = None, epochs: int | None = None) -> Trained:
    """Train the class-based form of ``name`` on a subset of its shipped data (fixed seed)."""
    entry = ZOO[name]
    ds = _dataset(entry.dataset)
    x_tr, x_te = ds.images() if entry.images else (ds.x_train, ds.x_test)
    n, ep, lr = TRAIN_SIZES[name]
    n, ep = n_train or n, epochs or ep
    model = train(zoo_model(name, class_based=True, seed=0), x_tr[:n], ds.y_train[:n], epochs=ep, lr=lr, seed=0)
    return Trained(name, model, x_tr[:n], x_te, ds.y_test)


def quantize(t: Trained, quant: Quant, n_calib: int = 200) -> QuantizedModel:
    """The integer model: the zoo's own config, with or without requantize ops.

    Raises:
        ConfigError: the exact model's scales leave float64 (the six-activation MLP).
    """
    base = ZOO[t.name].quant
    cfg = replace(base, requantize=RequantizeConfig() if quant is Quant.REQUANT else None)
    return secquant.quantize_model(t.model, t.x_train[:n_calib], config=cfg)


def one_thread() -> int:
    """Pin torch to one thread (the machine has two shared cores); returns the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before
