"""Small, deterministic training and evaluation helpers shared by QAT, the CLI and the benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from secquant.errors import ConfigError

__all__ = ["TrainConfig", "accuracy", "mlp", "predictions", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: Passes over the training data, >= 0.
        lr: Adam learning rate, > 0.
        batch_size: Examples per step, >= 1.
        seed: Seed of the shuffling (and of nothing else).
        clip_grad: Largest gradient norm per step (None: no clipping).
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    clip_grad: float | None = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be an int >= 0, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ConfigError(f"clip_grad must be positive or None, got {self.clip_grad!r}")


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: Callable[[], nn.Module] = nn.ReLU, seed: int = 0) -> nn.Sequential:
    """A Linear/activation stack with deterministic initialisation.

    Raises:
        ConfigError: a non-positive width.
    """
    if min((n_in, n_out, *hidden)) < 1:
        raise ConfigError(f"layer widths must be positive, got {n_in}, {hidden}, {n_out}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def train(
    forward: Callable[[torch.Tensor], torch.Tensor],
    parameters: list[nn.Parameter],
    x: ArrayLike,
    y: ArrayLike,
    config: TrainConfig = TrainConfig(),
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    modules: tuple[nn.Module, ...] = (),
) -> list[float]:
    """Minimise cross-entropy of ``forward(x)`` against labels ``y`` with Adam.

    Args:
        forward: Maps a float32 batch to scores of shape (n, classes).
        parameters: What to train.
        x, y: Training inputs and int labels.
        config: Epochs, learning rate, batch size, seed.
        on_epoch: Called with (epoch, mean loss) after each epoch (progress bars).
        modules: Set to train mode while training, eval mode afterwards.

    Returns:
        Mean loss per epoch.

    Raises:
        ConfigError: mismatched or empty data, or a non-finite loss.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if xt.shape[0] == 0 or xt.shape[0] != yt.shape[0]:
        raise ConfigError(f"need as many labels as inputs (>0), got {xt.shape[0]} inputs and {yt.shape[0]} labels")
    opt = torch.optim.Adam(parameters, lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    losses = []
    for m in modules:
        m.train()
    try:
        for epoch in range(config.epochs):
            perm = torch.randperm(xt.shape[0], generator=gen)
            total = 0.0
            for start in range(0, xt.shape[0], config.batch_size):
                idx = perm[start:start + config.batch_size]
                loss = nn.functional.cross_entropy(forward(xt[idx]).float(), yt[idx])
                if not torch.isfinite(loss):
                    raise ConfigError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower lr")
                opt.zero_grad()
                loss.backward()
                if config.clip_grad is not None:
                    nn.utils.clip_grad_norm_(parameters, config.clip_grad)
                opt.step()
                total += loss.item() * len(idx)
            losses.append(total / xt.shape[0])
            if on_epoch is not None:
                on_epoch(epoch, losses[-1])
    finally:
        for m in modules:
            m.eval()
    return losses


def predictions(fn: Callable[[Any], Any], x: ArrayLike, batch: int = 1000) -> NDArray[np.int64]:
    """Argmax class of ``fn`` over ``x`` in batches (torch or numpy scores, no gradients)."""
    arr = np.asarray(x, dtype=np.float32)
    out = []
    with torch.no_grad():
        for i in range(0, arr.shape[0], batch):
            scores = fn(torch.from_numpy(arr[i:i + batch]))
            scores = scores.detach().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
            out.append(np.argmax(scores, axis=1))
    return np.concatenate(out).astype(np.int64)


def accuracy(fn: Callable[[Any], Any], x: ArrayLike, y: ArrayLike) -> float:
    """Fraction of ``x`` whose argmax of ``fn`` equals ``y``, in [0, 1]."""
    return float(np.mean(predictions(fn, x) == np.asarray(y)))
