"""The audit's classifiers: the architecture, and its training and DP-SGD settings.

Models are ``Linear -> Square -> Linear`` chains (or one ``Linear`` when
``hidden = 0``), so :func:`secquant.quantize_model` converts them exactly.
Training is :func:`secquant.training.train_classifier` (Adam, or DP-SGD through
opacus); torch and opacus are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.training import DPSGD, Accountant, Optimizer, TrainOptions, check_int, check_number, train_classifier

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DPSpec", "TrainSpec", "build_model", "train_dpsgd", "train_model"]


@dataclass(frozen=True)
class TrainSpec:
    """How one model is trained (Adam on cross-entropy, mini-batches).

    Attributes:
        hidden: Hidden width; 0 gives a linear model.
        epochs: Passes over the training set, >= 1.
        batch_size: Examples per step, >= 1.
        lr: Adam learning rate, > 0.
        weight_decay: L2 penalty, >= 0.

    Raises:
        ConfigError: a field out of range.
    """

    hidden: int = 64
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_int(self.hidden, "hidden", 0)
        check_int(self.epochs, "epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        check_number(self.lr, "lr")
        check_number(self.weight_decay, "weight_decay", allow_zero=True)

    def options(self, seed: int) -> TrainOptions:
        """The :class:`~secquant.training.TrainOptions` of non-private training (Adam)."""
        return TrainOptions(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=seed,
                            optimizer=Optimizer.ADAM, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class DPSpec:
    """DP-SGD through opacus, calibrated to a target (ε, δ) by its accountant.

    Attributes:
        epsilon: Target ε in nats, > 0.
        delta: Target δ in (0, 1).
        max_grad_norm: Per-example clipping norm, > 0.
        epochs: Passes (expected) over the data with Poisson sampling, >= 1.
        batch_size: Expected batch size, >= 1.
        lr: SGD learning rate, > 0.
        accountant: Opacus accountant, ``"rdp"`` or ``"prv"``.

    Raises:
        ConfigError: a field out of range.
    """

    epsilon: float = 2.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.5
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if self.accountant not in ("rdp", "prv"):
            raise ConfigError(f"accountant must be 'rdp' or 'prv', got {self.accountant!r}")
        self.options(0)  # validates every field

    def options(self, seed: int) -> TrainOptions:
        """The :class:`~secquant.training.TrainOptions` of DP-SGD (plain SGD inside opacus)."""
        return TrainOptions(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=seed,
                            optimizer=Optimizer.SGD,
                            dp=DPSGD(self.epsilon, self.delta, self.max_grad_norm, Accountant(self.accountant)))


def build_model(n_features: int, n_classes: int, hidden: int) -> nn.Module:
    """``Linear(n_features, hidden) -> Square -> Linear(hidden, n_classes)``, or one Linear when ``hidden = 0``."""
    from torch import nn

    from secquant.nn import Square

    if hidden == 0:
        return nn.Sequential(nn.Linear(n_features, n_classes))
    return nn.Sequential(nn.Linear(n_features, hidden), Square(), nn.Linear(hidden, n_classes))


def _check_xy(x: NDArray[np.float32], y: NDArray[np.int64]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.int64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ConfigError(f"need at least 2 training examples with one label each, got x {x.shape}, y {y.shape}")
    return x, y


def train_model(x: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, spec: TrainSpec, seed: int) -> nn.Module:
    """Train a classifier without privacy.

    Args:
        x: Inputs of shape ``(n, ...)``; flattened.
        y: Labels in ``[0, n_classes)``.
        n_classes: Number of classes.
        spec: Training choices.
        seed: Seeds torch (the initial weights) and the batch order.

    Returns:
        The trained model in eval mode.

    Raises:
        ConfigError: mismatched or empty data.
        TrainingDivergedError: the loss became NaN or infinite.
    """
    import torch

    x, y = _check_xy(x, y)
    torch.manual_seed(seed)
    model = build_model(x.shape[1], n_classes, spec.hidden)
    return train_classifier(model, x, y, spec.options(seed)).model


def train_dpsgd(
    x: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, spec: TrainSpec, dp: DPSpec, seed: int
) -> tuple[nn.Module, float]:
    """Train with DP-SGD (opacus): Poisson batches, per-example clipping, Gaussian noise.

    ``spec.hidden`` fixes the architecture; optimizer, epochs and batch size come from ``dp``.

    Returns:
        The model (eval mode, plain ``nn.Sequential``) and the accountant's ε at ``dp.delta``.

    Raises:
        ConfigError: mismatched or empty data.
        TrainingDivergedError: the loss became NaN or infinite.
    """
    import torch

    x, y = _check_xy(x, y)
    torch.manual_seed(seed)
    model = build_model(x.shape[1], n_classes, spec.hidden)
    result = train_classifier(model, x, y, dp.options(seed))
    return result.model, float(result.epsilon)  # type: ignore[arg-type]
