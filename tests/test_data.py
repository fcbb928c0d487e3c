"""The shipped data sets load offline with fixed, stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

from secquant.data import load_dataset
from secquant.errors import ConfigError


def test_mnist_split_is_4000_1000_and_deterministic() -> None:
    a, b = load_dataset("mnist"), load_dataset("mnist")
    assert a.x_train.shape == (4000, 784) and a.x_test.shape == (1000, 784)
    assert np.array_equal(a.y_test, b.y_test) and a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    assert len(np.unique(a.y_test)) == 10
    assert a.images()[1].shape == (1000, 1, 28, 28)


def test_digits_and_breast_cancer() -> None:
    d = load_dataset("digits")
    assert d.n_features == 64 and d.n_classes == 10 and d.x_train.max() <= 1.0
    bc = load_dataset("breast_cancer")
    assert bc.n_classes == 2 and abs(float(bc.x_train.mean())) < 1e-3
    with pytest.raises(ConfigError):
        bc.images()


@pytest.mark.parametrize("kwargs", [{"name": "cifar"}, {"name": "digits", "test_size": 1.5}, {"name": "digits", "test_size": 0}])
def test_bad_requests(kwargs) -> None:
    with pytest.raises(ConfigError):
        load_dataset(**kwargs)
