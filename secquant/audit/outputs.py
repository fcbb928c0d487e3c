"""What a mechanism returns, as the auditor sees it: validated arrays and their kind.

:func:`as_outputs` checks a mechanism's return value and shapes it as ``(n,)``
or ``(n, d)``; :func:`infer_kind` decides whether draws are scalars,
categories (strings, or rows of few distinct integer patterns) or real vectors.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = ["OutputKind", "as_outputs", "infer_kind", "integral", "row_keys"]


class OutputKind(enum.Enum):
    """How a mechanism's outputs are treated."""

    SCALAR = "scalar"  #: one number per draw
    CATEGORICAL = "categorical"  #: a category, a string, or a row of few distinct integer patterns
    VECTOR = "vector"  #: a real vector per draw (non-finite entries allowed as markers)


def as_outputs(out: Any, n: int) -> NDArray[Any]:
    """Validate a mechanism's return value and shape it as ``(n,)`` or ``(n, d)``.

    Booleans become int8; trailing dimensions are flattened.

    Raises:
        ConfigError: not an array of ``n`` outputs along axis 0, or empty rows.
    """
    arr = np.asarray(out)
    if arr.ndim == 0 or arr.shape[0] != n:
        shape = "a scalar" if arr.ndim == 0 else f"shape {arr.shape}"
        raise ConfigError(
            f"mechanism returned {shape} but was asked for n={n} outputs; it must return an array "
            "with n outputs along axis 0"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.ndim > 2 or (arr.ndim == 2 and arr.dtype.kind in "US"):
        if arr.dtype.kind in "US":
            raise ConfigError("string outputs must be one string per draw (a 1-D array)")
        arr = arr.reshape(n, -1)
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ConfigError("mechanism returned empty outputs")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr


def integral(arr: NDArray[Any]) -> bool:
    if arr.dtype.kind in "iub":
        return True
    if arr.dtype.kind != "f":
        return False
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def infer_kind(out0: NDArray[Any], out1: NDArray[Any]) -> OutputKind:
    """Classify outputs (from :func:`as_outputs`) as scalar, categorical or vector."""
    if out0.dtype.kind in "US" or out1.dtype.kind in "US":
        return OutputKind.CATEGORICAL
    if out0.ndim == 1:
        return OutputKind.SCALAR
    pooled = np.concatenate([out0, out1])
    if integral(pooled) and np.unique(row_keys(pooled)).size <= pooled.shape[0] // 2:
        return OutputKind.CATEGORICAL
    return OutputKind.VECTOR


def row_keys(arr: NDArray[Any]) -> NDArray[Any]:
    """One sortable key per draw (the value itself for 1-D, the row's bytes for 2-D)."""
    if arr.ndim == 1:
        return arr
    rows = np.ascontiguousarray(arr)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
