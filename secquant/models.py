"""Reference networks and a deterministic trainer, for demos, benchmarks and papers.

* :func:`digits_mlp`: 64 → 32 → Square → 10, for sklearn digits.
* :func:`mnist_mlp`: 784 → 64 → Square → 10, for MNIST.
* :func:`tenseal_mnist_cnn`: TenSEAL's MNIST tutorial network, conv 7×7 stride 3
  with 4 kernels → Square → fc 256 → 64 → Square → fc 64 → 10.
* :func:`small_cnn`: conv → Square → AvgPool → Linear, for MNIST.

:func:`train` is full-batch-free mini-batch Adam with a fixed seed, so a
given (network, data, seed) always yields the same weights on one machine.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.nn.layers import Square

__all__ = ["accuracy", "digits_mlp", "mnist_mlp", "small_cnn", "tenseal_mnist_cnn", "train"]


def digits_mlp(hidden: int = 32) -> nn.Sequential:
    """64 → hidden → Square → 10."""
    return nn.Sequential(nn.Linear(64, hidden), Square(), nn.Linear(hidden, 10))


def mnist_mlp(hidden: int = 64) -> nn.Sequential:
    """784 → hidden → Square → 10."""
    return nn.Sequential(nn.Linear(784, hidden), Square(), nn.Linear(hidden, 10))


def tenseal_mnist_cnn() -> nn.Sequential:
    """TenSEAL's MNIST tutorial network, for 1×28×28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=7, stride=3), Square(), nn.Flatten(),
        nn.Linear(256, 64), Square(), nn.Linear(64, 10),
    )


def small_cnn() -> nn.Sequential:
    """conv 5×5 stride 2 (4 kernels) → Square → avgpool 2 → Linear, for 1×28×28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=5, stride=2), Square(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(144, 10),
    )


def train(
    model: nn.Module,
    x: NDArray[np.floating],
    y: NDArray[np.integer],
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> nn.Module:
    """Train with Adam and cross-entropy; returns the model in eval mode.

    Raises:
        ConfigError: mismatched lengths or non-positive sizes.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError("epochs, batch_size and lr must be positive")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.as_tensor(np.asarray(y), dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(scores: NDArray[np.floating] | torch.Tensor, y: NDArray[np.integer]) -> float:
    """Fraction of rows whose argmax equals the label."""
    s = scores.detach().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    return float(np.mean(np.argmax(s, axis=1) == np.asarray(y)))
