"""Small classifiers for audits: plain training and DP-SGD through opacus.

Models are ``Linear -> Square -> Linear`` chains (or one ``Linear`` when
``hidden = 0``), so :func:`secquant.quantize_model` converts them exactly.
torch and opacus are imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DPSpec", "TrainSpec", "build_model", "train_dpsgd", "train_model"]


def _positive_int(value: object, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")


def _positive_float(value: object, what: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or float(value) < 0 or (float(value) == 0 and not allow_zero):
        raise ConfigError(f"{what} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


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
        _positive_int(self.hidden, "hidden", 0)
        _positive_int(self.epochs, "epochs")
        _positive_int(self.batch_size, "batch_size")
        _positive_float(self.lr, "lr")
        _positive_float(self.weight_decay, "weight_decay", allow_zero=True)


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
        _positive_float(self.epsilon, "epsilon")
        if not 0.0 < float(self.delta) < 1.0:
            raise ConfigError(f"delta must lie in (0, 1), got {self.delta}")
        _positive_float(self.max_grad_norm, "max_grad_norm")
        _positive_int(self.epochs, "epochs")
        _positive_int(self.batch_size, "batch_size")
        _positive_float(self.lr, "lr")
        if self.accountant not in ("rdp", "prv"):
            raise ConfigError(f"accountant must be 'rdp' or 'prv', got {self.accountant!r}")


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
        seed: Seeds torch and the batch order.

    Returns:
        The trained model in eval mode.

    Raises:
        ConfigError: mismatched or empty data.
    """
    import torch

    x, y = _check_xy(x, y)
    torch.manual_seed(seed)
    model = build_model(x.shape[1], n_classes, spec.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(spec.epochs):
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(yt), spec.batch_size):
            idx = perm[i : i + spec.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def train_dpsgd(
    x: NDArray[np.float32], y: NDArray[np.int64], n_classes: int, spec: TrainSpec, dp: DPSpec, seed: int
) -> tuple[nn.Module, float]:
    """Train with DP-SGD (opacus): Poisson batches, per-example clipping, Gaussian noise.

    ``spec.hidden`` fixes the architecture; optimizer, epochs and batch size come from ``dp``.

    Returns:
        The model (eval mode, plain ``nn.Sequential``) and the accountant's ε at ``dp.delta``.

    Raises:
        ConfigError: mismatched or empty data.
    """
    import warnings

    import torch
    from opacus import PrivacyEngine

    x, y = _check_xy(x, y)
    torch.manual_seed(seed)
    model = build_model(x.shape[1], n_classes, spec.hidden)
    opt = torch.optim.SGD(model.parameters(), lr=dp.lr)
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=dp.batch_size, generator=torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():
        # Audit models are measured, not deployed: the fast (non-cryptographic) RNG is fine here.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        engine = PrivacyEngine(accountant=dp.accountant, secure_mode=False)
        private, opt, loader = engine.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=dp.epsilon, target_delta=dp.delta,
            epochs=dp.epochs, max_grad_norm=dp.max_grad_norm,
        )
        private.train()
        for _ in range(dp.epochs):
            for xb, yb in loader:
                if len(yb) == 0:
                    continue
                opt.zero_grad()
                torch.nn.functional.cross_entropy(private(xb), yb).backward()
                opt.step()
        eps = float(engine.get_epsilon(dp.delta))
    plain = build_model(x.shape[1], n_classes, spec.hidden)
    plain.load_state_dict({k.removeprefix("_module."): v for k, v in private.state_dict().items()})
    return plain.eval(), eps
