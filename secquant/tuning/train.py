"""Tuning's training settings and the small deterministic MLP of the recipe.

Training is :func:`secquant.training.train_classifier` (the one loop); :func:`train`
keeps tuning's call form (a forward function, the parameters to update, the
modules to switch to train mode), and :func:`accuracy` and :func:`predictions`
are :mod:`secquant.training`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from numpy.typing import ArrayLike
from torch import nn

from secquant.errors import ConfigError
from secquant.training import TrainOptions, accuracy, predictions, train_classifier

__all__ = ["TrainConfig", "accuracy", "mlp", "predictions", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """How tuning trains (Adam, gradient norm clipped at 5 by default).

    Attributes:
        epochs: Passes over the training data, >= 0.
        lr: Adam learning rate, > 0.
        batch_size: Examples per step, >= 1.
        seed: Seed of the shuffling (and of nothing else), >= 0.
        clip_grad: Largest gradient norm per step (None: no clipping).

    Raises:
        ConfigError: a field out of range.
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    clip_grad: float | None = 5.0

    def __post_init__(self) -> None:
        self.options()  # validates every field

    def options(self) -> TrainOptions:
        """The same settings as :class:`~secquant.training.TrainOptions`."""
        return TrainOptions(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                            clip_grad=self.clip_grad)


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
    """Minimise cross-entropy of ``forward(x)`` against labels ``y`` (:func:`secquant.training.train_classifier`).

    Args:
        forward: Maps a float32 batch to scores of shape (n, classes).
        parameters: What to train.
        x, y: Training inputs and int labels.
        config: Epochs, learning rate, batch size, seed.
        on_epoch: Called with (epoch, mean loss) after each epoch (progress bars).
        modules: Set to train mode while training, eval mode afterwards (at most one).

    Returns:
        Mean loss per epoch.

    Raises:
        ConfigError: mismatched or empty data, a non-finite loss, or more than one module.
    """
    if len(modules) > 1:
        raise ConfigError("train switches one module to train mode; wrap several in an nn.ModuleList")
    model = modules[0] if modules else nn.Module()
    result = train_classifier(model, x, y, config.options(), forward=forward, parameters=parameters,
                              on_epoch=on_epoch)
    return list(result.losses)
