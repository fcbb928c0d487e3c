"""Reference networks (a model zoo), each trainable on shipped data, and a deterministic trainer.

Every architecture comes as ``nn.Sequential`` where it is a chain, and as a
class-based ``nn.Module`` written the way a user writes one (functional
flattening, ``x * x``, residual ``+``); both quantize to the same integer model.

==================  ================  =======================================================
zoo name            data              architecture
==================  ================  =======================================================
``logistic``        breast_cancer     30 → 2 (logistic regression)
``digits_mlp``      digits            64 → 32 → Square → 10
``tutorial_cnn``    mnist             TenSEAL's tutorial: conv 7×7/3 (4) → Square → 256 → 64 →
                                      Square → 10
``lenet5``          mnist             LeNet-5: conv 5×5 (6) → poly → avgpool → conv 5×5 (16) →
                                      poly → avgpool → 120 → poly → 84 → poly → 10
``resnet``          mnist             conv stem + BatchNorm, two residual blocks (BatchNorm, a
                                      1×1 conv skip when the shape changes), global average
                                      pooling, 10
``deep_mlp``        digits            64 → 32, six Square/Poly layers, → 10
==================  ================  =======================================================

:data:`ZOO` holds each :class:`ZooEntry` (builders, data set, whether the
inputs are images, and the quantization that suits it: models with more than
two activations are requantized).  :func:`train` trains through the one loop
of :mod:`secquant.training`.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from secquant.nn.layers import Poly, Square
from secquant.quant.config import QuantConfig
from secquant.quant.primitives import coerce_enum
from secquant.quant.requantize_config import RequantizeConfig

__all__ = [
    "ZOO", "DeepMLP", "DigitsMLP", "LeNet5", "LogisticRegression", "SmallResNet", "TutorialCNN", "ZooEntry",
    "ZooName", "accuracy", "deep_mlp", "digits_mlp", "lenet5", "logistic_regression", "mnist_mlp", "small_cnn",
    "tenseal_mnist_cnn", "train", "zoo_model",
]


def poly_activation() -> Poly:
    """The zoo's polynomial activation: ``0.5x + 0.1x²`` (learnable), one ciphertext multiplication."""
    return Poly([0.0, 0.5, 0.1], learnable=True)


# -- chains as nn.Sequential ------------------------------------------------------------
def logistic_regression(n_features: int = 30, classes: int = 2) -> nn.Sequential:
    """n_features → classes: logistic regression (softmax is left to the decrypted scores)."""
    return nn.Sequential(nn.Linear(n_features, classes))


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


def lenet5() -> nn.Sequential:
    """LeNet-5 for 1×28×28 inputs with polynomial activations and average pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), poly_activation(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), poly_activation(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), poly_activation(), nn.Linear(120, 84), poly_activation(), nn.Linear(84, 10),
    )


def deep_mlp(n_features: int = 64, hidden: int = 32, depth: int = 6, classes: int = 10) -> nn.Sequential:
    """n_features → hidden, then ``depth`` activations (Square and Poly alternating) and Linears, → classes."""
    layers: list[nn.Module] = [nn.Linear(n_features, hidden)]
    for i in range(depth):
        layers += [Square() if i % 2 == 0 else poly_activation(), nn.Linear(hidden, hidden if i < depth - 1 else classes)]
    return nn.Sequential(*layers)


# -- the same networks as a user writes them ----------------------------------------------
class LogisticRegression(nn.Module):
    """Logistic regression: one Linear; the sigmoid/softmax is applied to decrypted scores."""

    def __init__(self, n_features: int = 30, classes: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class DigitsMLP(nn.Module):
    """64 → hidden → x² → 10."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, hidden), nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h * h)


class TutorialCNN(nn.Module):
    """TenSEAL's MNIST tutorial network, with functional flattening and squares."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=7, stride=3)
        self.fc1, self.fc2 = nn.Linear(256, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = (h * h).view(h.size(0), -1)
        h = self.fc1(h)
        return self.fc2(h * h)


class LeNet5(nn.Module):
    """LeNet-5 with polynomial activations; pooling and flattening through ``torch.nn.functional``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.act1, self.act2, self.act3, self.act4 = (poly_activation() for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.act1(self.conv1(x)), 2)
        h = F.avg_pool2d(self.act2(self.conv2(h)), 2)
        h = self.act3(self.fc1(torch.flatten(h, 1)))
        return self.fc3(self.act4(self.fc2(h)))


class ResidualBlock(nn.Module):
    """conv 3×3 → BatchNorm → poly → conv 3×3 → BatchNorm, plus the input (a 1×1 conv when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn1, self.act = nn.BatchNorm2d(c_out), poly_activation()
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return self.skip(x) + self.bn2(self.conv2(h))


class SmallResNet(nn.Module):
    """A small ResNet for 1×28×28: stem, two residual blocks, global average pooling, a classifier."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, width, 3, stride=2, padding=1), nn.BatchNorm2d(width)
        self.act = poly_activation()
        self.block1 = ResidualBlock(width, width)
        self.block2 = ResidualBlock(width, 2 * width, stride=2)
        self.act_out = poly_activation()
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn(self.stem(x)))
        h = self.act_out(self.block2(self.block1(h)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class DeepMLP(nn.Module):
    """The six-activation MLP as a class: a ModuleList of Linears, activations applied in a loop."""

    def __init__(self, n_features: int = 64, hidden: int = 32, depth: int = 6, classes: int = 10) -> None:
        super().__init__()
        sizes = [n_features] + [hidden] * depth + [classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.acts = nn.ModuleList(Square() if i % 2 == 0 else poly_activation() for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, act in zip(self.layers[:-1], self.acts):
            x = act(linear(x))
        return self.layers[-1](x)


# -- the zoo -------------------------------------------------------------------------------
class ZooName(enum.Enum):
    """The reference architectures."""

    LOGISTIC = "logistic"
    DIGITS_MLP = "digits_mlp"
    TUTORIAL_CNN = "tutorial_cnn"
    LENET5 = "lenet5"
    RESNET = "resnet"
    DEEP_MLP = "deep_mlp"


@dataclass(frozen=True)
class ZooEntry:
    """One reference architecture.

    Attributes:
        name: Its :class:`ZooName`.
        dataset: The shipped data set it trains on (``secquant.data.load_dataset``).
        images: Whether it takes ``dataset.images()`` (N, C, H, W) rather than flat rows.
        module: Builds the class-based form.
        sequential: Builds the ``nn.Sequential`` form (None: not a chain).
        quant: The quantization that suits it (requantized past two activations).
    """

    name: ZooName
    dataset: str
    images: bool
    module: Callable[[], nn.Module]
    sequential: Callable[[], nn.Module] | None = None
    quant: QuantConfig = field(default_factory=QuantConfig)


_REQUANTIZED = QuantConfig(bits=8, requantize=RequantizeConfig())

#: Every reference architecture, by name.
ZOO: dict[ZooName, ZooEntry] = {e.name: e for e in (
    ZooEntry(ZooName.LOGISTIC, "breast_cancer", False, LogisticRegression, logistic_regression),
    ZooEntry(ZooName.DIGITS_MLP, "digits", False, DigitsMLP, digits_mlp),
    ZooEntry(ZooName.TUTORIAL_CNN, "mnist", True, TutorialCNN, tenseal_mnist_cnn),
    ZooEntry(ZooName.LENET5, "mnist", True, LeNet5, lenet5, _REQUANTIZED),
    ZooEntry(ZooName.RESNET, "mnist", True, SmallResNet, None, _REQUANTIZED),
    ZooEntry(ZooName.DEEP_MLP, "digits", False, DeepMLP, deep_mlp, _REQUANTIZED),
)}


def zoo_model(name: ZooName | str, *, class_based: bool = False, seed: int | None = 0) -> nn.Module:
    """A fresh (untrained) reference network.

    Args:
        name: A :class:`ZooName` or its value (``"lenet5"``...).
        class_based: The class-based form instead of ``nn.Sequential`` (always for ``resnet``).
        seed: Seeds torch before building, so the initial weights are fixed (None: leave torch alone).

    Raises:
        ConfigError: unknown name.
    """
    entry = ZOO[coerce_enum(name, ZooName, "zoo model")]
    if seed is not None:
        torch.manual_seed(seed)
    build = entry.module if class_based or entry.sequential is None else entry.sequential
    return build()


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
    """Train with Adam and cross-entropy through :func:`secquant.training.train_classifier`; returns the model in eval mode.

    Raises:
        ConfigError: mismatched lengths or non-positive sizes.
    """
    from secquant.training import TrainOptions, train_classifier

    torch.manual_seed(seed)
    train_classifier(model, x, y, TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed))
    return model.eval()


def accuracy(scores: NDArray[np.floating] | torch.Tensor, y: NDArray[np.integer]) -> float:
    """Fraction of rows of ``scores`` whose argmax equals the label (scores, not a model: see
    :func:`secquant.training.accuracy` for models and ``qm.predict``)."""
    s = scores.detach().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    return float(np.mean(np.argmax(s, axis=1) == np.asarray(y)))
