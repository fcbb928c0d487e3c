"""Integer ops affine in their input: linear, convolutions, window sums, reshapes, constants.

Ops never divide: scales multiply through the network and the float result is
recovered only after decryption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError
from secquant.quant import exact
from secquant.quant.ops_base import (
    IntArray,
    IntOp,
    OpKind,
    Shape,
    float_bound,
    max_abs,
    pair,
)

__all__ = ["IntAddConst", "IntConv1d", "IntConv2d", "IntFlatten", "IntLinear", "IntScale", "IntSumPool2d"]


def _batch(a: IntArray) -> IntArray:
    return np.asarray(a)[None]


def _row_sum(w: IntArray) -> int:
    """Largest sum of |w| over one output channel."""
    arr = np.asarray(w)
    arr = np.abs(arr.astype(object) if arr.dtype == object else arr.astype(np.int64))
    return int(arr.reshape(arr.shape[0], -1).sum(axis=1).max()) if arr.size else 0


@dataclass(frozen=True, eq=False)
class _Weighted(IntOp):
    """Shared interval logic for ops linear in x with integer weights and bias."""

    weight: IntArray
    bias: IntArray

    def _apply(self, x: IntArray, w: IntArray, bound: int) -> IntArray:
        raise NotImplementedError

    def _abs_estimate(self, m: IntArray) -> int:
        w = np.abs(np.asarray(self.weight, dtype=np.float64))
        return float_bound(self._apply_float(np.asarray(m, dtype=np.float64), w))

    def _apply_float(self, m: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _with_bias(self, y: IntArray, bound: int) -> IntArray:
        total = bound + max_abs(self.bias)
        return exact.as_exact(exact.as_exact(y, total) + exact.as_exact(self.bias, total), total)

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return self._with_bias(self._apply(x, self.weight, bound), bound)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        m = np.maximum(np.abs(np.asarray(lo, dtype=object)), np.abs(np.asarray(hi, dtype=object)))
        est = self._abs_estimate(m)
        w = np.asarray(self.weight)  # int64 stays int64 (the kernels pick exact arithmetic from ``est``)
        wpos = np.where(w > 0, w, 0)
        wneg = np.where(w < 0, w, 0)
        new_hi = self._apply(_batch(hi), wpos, est) + self._apply(_batch(lo), wneg, est)
        new_lo = self._apply(_batch(lo), wpos, est) + self._apply(_batch(hi), wneg, est)
        return self._with_bias(new_lo, est)[0], self._with_bias(new_hi, est)[0]

    def partial_bound(self, m: IntArray) -> IntArray:
        est = self._abs_estimate(m)
        weighted = self._apply(_batch(m), np.abs(np.asarray(self.weight)), est)[0]
        return exact.to_python_ints(weighted) + np.abs(exact.to_python_ints(self.bias))

    def runtime_bound(self, m: int) -> int:
        return m * _row_sum(self.weight) + max_abs(self.bias)

    def arrays(self) -> dict[str, IntArray]:
        return {"weight": self.weight, "bias": self.bias}


@dataclass(frozen=True, eq=False)
class IntLinear(_Weighted):
    """y = W x + b with integer W of shape (out, in) and integer b of shape (out,)."""

    kind: ClassVar[OpKind] = OpKind.LINEAR

    def output_shape(self, shape: Shape) -> Shape:
        return (int(self.weight.shape[0]),)

    def _apply(self, x: IntArray, w: IntArray, bound: int) -> IntArray:
        return exact.matmul(x, w, bound)

    def _apply_float(self, m: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return w @ m


@dataclass(frozen=True, eq=False)
class IntConv2d(_Weighted):
    """Integer 2-D cross-correlation; ``bias`` broadcasts to (out, Ho, Wo)."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kind: ClassVar[OpKind] = OpKind.CONV2D

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", pair(self.stride))
        object.__setattr__(self, "padding", pair(self.padding))

    def output_shape(self, shape: Shape) -> Shape:
        _, h, w = shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (int(self.weight.shape[0]), ho, wo)

    def _apply(self, x: IntArray, w: IntArray, bound: int) -> IntArray:
        return exact.conv2d(x, w, self.stride, self.padding, bound)

    def _apply_float(self, m: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _float_conv(m, w, self.stride, self.padding)

    def attrs(self) -> dict[str, Any]:
        return {"stride": list(self.stride), "padding": list(self.padding)}


def _float_conv(m: NDArray[np.float64], w: NDArray[np.float64], stride: tuple[int, int], padding: tuple[int, int]) -> NDArray[np.float64]:
    xs = exact.pad2d(m[None], padding)
    win = np.lib.stride_tricks.sliding_window_view(xs, w.shape[2:], axis=(-2, -1))[:, :, :: stride[0], :: stride[1]]
    return np.moveaxis(np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])), -1, 1)[0]


@dataclass(frozen=True, eq=False)
class IntConv1d(_Weighted):
    """Integer 1-D cross-correlation on (C, L) inputs: weight (O, C, k), ``bias`` broadcasting to (O, Lo).

    Computed as a 2-D cross-correlation of height 1, so it shares the exact kernel.
    """

    stride: int = 1
    padding: int = 0
    kind: ClassVar[OpKind] = OpKind.CONV1D

    def __post_init__(self) -> None:
        for attr in ("stride", "padding"):
            value = getattr(self, attr)
            object.__setattr__(self, attr, int(value[0] if isinstance(value, (tuple, list)) else value))

    def output_shape(self, shape: Shape) -> Shape:
        _, length = shape
        return (int(self.weight.shape[0]), (length + 2 * self.padding - int(self.weight.shape[2])) // self.stride + 1)

    def _apply(self, x: IntArray, w: IntArray, bound: int) -> IntArray:
        out = exact.conv2d(np.asarray(x)[:, :, None, :], np.asarray(w)[:, :, None, :], (1, self.stride), (0, self.padding), bound)
        return out[:, :, 0, :]

    def _apply_float(self, m: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _float_conv(m[:, None, :], w[:, :, None, :], (1, self.stride), (0, self.padding))[:, 0, :]

    def attrs(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding}


@dataclass(frozen=True, eq=False)
class IntSumPool2d(IntOp):
    """Window sums: average pooling whose 1/k² has moved into the output scale."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    kind: ClassVar[OpKind] = OpKind.SUMPOOL2D

    def __post_init__(self) -> None:
        for attr in ("kernel", "stride", "padding"):
            object.__setattr__(self, attr, pair(getattr(self, attr)))

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        ho = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        return (c, ho, wo)

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return exact.sum_pool2d(x, self.kernel, self.stride, self.padding, bound)

    def _est(self, m: IntArray) -> int:
        return max_abs(m) * self.kernel[0] * self.kernel[1] + 1

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        est = max(self._est(lo), self._est(hi))
        return self.forward(_batch(lo), est)[0], self.forward(_batch(hi), est)[0]

    def partial_bound(self, m: IntArray) -> IntArray:
        return self.forward(_batch(m), self._est(m))[0]

    def runtime_bound(self, m: int) -> int:
        return m * self.kernel[0] * self.kernel[1]

    def attrs(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}


@dataclass(frozen=True, eq=False)
class IntFlatten(IntOp):
    """Reshape (n, *shape) to (n, prod(shape))."""

    kind: ClassVar[OpKind] = OpKind.FLATTEN

    def output_shape(self, shape: Shape) -> Shape:
        return (int(np.prod(shape)),)

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return x.reshape(x.shape[0], -1)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        return np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1)

    def partial_bound(self, m: IntArray) -> IntArray:
        return np.asarray(m).reshape(-1)


@dataclass(frozen=True, eq=False)
class IntAddConst(IntOp):
    """y = x + c for an integer constant c broadcast over one input (removes a zero point)."""

    constant: IntArray
    kind: ClassVar[OpKind] = OpKind.ADD_CONST

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return exact.as_exact(exact.as_exact(x, bound) + exact.as_exact(self.constant, bound), bound)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        c = exact.to_python_ints(self.constant)
        return np.asarray(lo, dtype=object) + c, np.asarray(hi, dtype=object) + c

    def partial_bound(self, m: IntArray) -> IntArray:
        return np.asarray(m, dtype=object) + np.abs(exact.to_python_ints(self.constant))

    def runtime_bound(self, m: int) -> int:
        return m + max_abs(self.constant)

    def arrays(self) -> dict[str, IntArray]:
        return {"constant": self.constant}


@dataclass(frozen=True, eq=False)
class IntScale(IntOp):
    """y = m ⊙ x + b element-wise, with integer ``multiplier`` m and ``bias`` b broadcast over one input.

    What BatchNorm becomes where it cannot be folded into a Linear or a
    convolution (m = ±1: the factor moves into the output scale), and what
    evens out the window counts of ``AvgPool2d(count_include_pad=False)``.
    """

    multiplier: IntArray
    bias: IntArray
    kind: ClassVar[OpKind] = OpKind.SCALE

    def __post_init__(self) -> None:
        if np.asarray(self.multiplier).dtype.kind not in "iuO" or np.asarray(self.bias).dtype.kind not in "iuO":
            raise ArtifactError(f"scale op {self.name!r}: multiplier and bias must be integer arrays")

    def forward(self, x: IntArray, bound: int) -> IntArray:
        if bound < exact.INT64_EXACT:  # bound covers |x·m| + |b|
            m, b = np.asarray(self.multiplier).astype(np.int64), np.asarray(self.bias).astype(np.int64)
            return np.asarray(x).astype(np.int64) * m + b
        return exact.to_python_ints(x) * exact.to_python_ints(self.multiplier) + exact.to_python_ints(self.bias)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        m, b = exact.to_python_ints(self.multiplier), exact.to_python_ints(self.bias)
        a, c = np.asarray(lo, dtype=object) * m, np.asarray(hi, dtype=object) * m
        return np.minimum(a, c) + b, np.maximum(a, c) + b

    def partial_bound(self, m: IntArray) -> IntArray:
        return np.asarray(m, dtype=object) * np.abs(exact.to_python_ints(self.multiplier)) + np.abs(exact.to_python_ints(self.bias))

    def runtime_bound(self, m: int) -> int:
        return m * max_abs(self.multiplier) + max_abs(self.bias)

    def arrays(self) -> dict[str, IntArray]:
        return {"multiplier": self.multiplier, "bias": self.bias}
