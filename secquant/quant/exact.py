"""Exact integer kernels: matmul, 2-D convolution and sum pooling.

Each kernel takes a bound on the absolute value of every partial sum it will
form and picks the fastest arithmetic that is still exact:

* below 2**53: float64 (BLAS); integers below 2**53 and their sums are exact;
* below 2**63: int64;
* otherwise: numpy object arrays of Python ints (arbitrary precision).

The bound comes from :mod:`secquant.quant.bounds`; a wrong bound would break
exactness, so callers pass the proven one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FLOAT_EXACT",
    "INT64_EXACT",
    "as_exact",
    "conv2d",
    "matmul",
    "pad2d",
    "sum_pool2d",
    "to_python_ints",
]

FLOAT_EXACT = 2**53
INT64_EXACT = 2**63

IntArray = NDArray[Any]


def _kind(bound: int) -> str:
    if bound < FLOAT_EXACT:
        return "float"
    if bound < INT64_EXACT:
        return "int64"
    return "object"


def as_exact(a: IntArray, bound: int) -> IntArray:
    """Return ``a`` as int64 if ``bound < 2**63``, else as an object array of Python ints."""
    if bound < INT64_EXACT:
        return np.asarray(a).astype(np.int64)
    return to_python_ints(a)


def to_python_ints(a: Any) -> IntArray:
    """Return an object array holding Python ints (exact at any size)."""
    arr = np.asarray(a)
    if arr.dtype == object:
        return np.vectorize(int, otypes=[object])(arr) if arr.size else arr
    return arr.astype(np.int64).astype(object) if arr.dtype.kind in "iu" else np.vectorize(int, otypes=[object])(arr)


def _cast(a: IntArray, kind: str) -> IntArray:
    if kind == "float":
        return np.asarray(a, dtype=np.float64) if np.asarray(a).dtype != object else np.asarray(a).astype(np.float64)
    if kind == "int64":
        return np.asarray(a).astype(np.int64)
    return to_python_ints(a)


def _finish(result: IntArray, kind: str, bound: int) -> IntArray:
    if kind == "float":
        return np.rint(result).astype(np.int64)
    return as_exact(result, bound)


def matmul(x: IntArray, w: IntArray, bound: int) -> IntArray:
    """Exact ``x @ w.T`` for integer ``x`` of shape (n, in) and ``w`` of shape (out, in).

    Args:
        bound: An upper bound on ``sum_j |w[k, j]| |x[i, j]|`` over all i, k.
    """
    kind = _kind(bound)
    return _finish(_cast(x, kind) @ _cast(w, kind).T, kind, bound)


def pad2d(x: IntArray, padding: tuple[int, int]) -> IntArray:
    """Zero-pad the last two axes of ``x`` by ``padding`` = (ph, pw) on each side."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    h, w = x.shape[-2:]
    # np.zeros(dtype=object) holds Python ints; np.pad would insert numpy int64 zeros, which
    # overflow when multiplied by Python ints past 2**63.
    out = np.zeros((*x.shape[:-2], h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[..., ph : ph + h, pw : pw + w] = x
    return out


def _windows(x: IntArray, kernel: tuple[int, int], stride: tuple[int, int]) -> IntArray:
    """View of shape (n, C, Ho, Wo, kh, kw) over the strided windows of ``x``."""
    v = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(-2, -1))
    return v[:, :, :: stride[0], :: stride[1]]


def conv2d(
    x: IntArray,
    w: IntArray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    bound: int,
) -> IntArray:
    """Exact cross-correlation, as ``torch.nn.functional.conv2d`` without bias.

    Args:
        x: Integers of shape (n, C, H, W).
        w: Integers of shape (O, C, kh, kw).
        bound: Upper bound on ``sum |w| |x|`` over any output window.

    Returns:
        Integers of shape (n, O, Ho, Wo).
    """
    kind = _kind(bound)
    xs = pad2d(_cast(x, kind), padding)
    win = _windows(xs, (w.shape[2], w.shape[3]), stride)
    out = np.tensordot(win, _cast(w, kind), axes=([1, 4, 5], [1, 2, 3]))
    return _finish(np.moveaxis(out, -1, 1), kind, bound)


def sum_pool2d(
    x: IntArray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    bound: int,
) -> IntArray:
    """Exact window sums (average pooling without the division), shape (n, C, Ho, Wo)."""
    kind = _kind(bound)
    win = _windows(pad2d(_cast(x, kind), padding), kernel, stride)
    return _finish(win.sum(axis=(-2, -1)), kind, bound)
