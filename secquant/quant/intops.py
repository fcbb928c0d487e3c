"""The integer operations an integer model is made of.

Every op works on exact integers, batch first, and has three faces:

* ``forward(x, bound)``: the exact result (the oracle for every backend);
* ``interval(lo, hi)``: exact per-element bounds of the result, given bounds of
  the input (interval arithmetic);
* ``partial_bound(m)``: per-element bound on the absolute value of every
  partial sum or product the op forms, given ``|x| <= m`` element-wise.
  Approximate schemes (CKKS) and the choice of exact arithmetic use it.

Ops never divide: scales multiply through the network and the float result is
recovered only after decryption.  Encrypted backends dispatch on ``kind``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError
from secquant.quant import exact

__all__ = [
    "IntAddConst",
    "IntConv2d",
    "IntFlatten",
    "IntLinear",
    "IntOp",
    "IntPoly",
    "IntSquare",
    "IntSumPool2d",
    "OP_TYPES",
    "max_abs",
    "op_from_parts",
    "op_to_parts",
]

IntArray = NDArray[Any]
Shape = tuple[int, ...]


def max_abs(*arrays: IntArray) -> int:
    """Largest absolute value over integer arrays, as a Python int (0 if empty)."""
    best = 0
    for a in arrays:
        arr = np.asarray(a)
        if arr.size:
            best = max(best, int(np.max(np.abs(arr))))
    return best


def _float_bound(values: NDArray[np.float64]) -> int:
    """An int safely above every float estimate (estimates only pick the arithmetic)."""
    top = float(np.max(values)) if np.size(values) else 0.0
    return int(math.ceil(top * (1 + 1e-9))) + 1


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


@dataclass(frozen=True, eq=False)
class IntOp:
    """Base class: a named integer operation on batch-first arrays."""

    name: str
    kind: ClassVar[str] = "op"

    def output_shape(self, shape: Shape) -> Shape:
        """Shape of one output given the shape of one input (no batch axis)."""
        return shape

    def forward(self, x: IntArray, bound: int) -> IntArray:
        """Exact result for integer ``x`` of shape (n, *shape); ``bound`` is the proven partial bound."""
        raise NotImplementedError

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        """Exact per-element (lo, hi) of the output, given per-element input bounds."""
        raise NotImplementedError

    def partial_bound(self, m: IntArray) -> IntArray:
        """Per-element bound on |every partial result| given ``|x| <= m``."""
        raise NotImplementedError

    def arrays(self) -> dict[str, IntArray]:
        """Integer arrays to serialize."""
        return {}

    def attrs(self) -> dict[str, Any]:
        """JSON-ready attributes to serialize."""
        return {}

    @property
    def multiplicative_depth(self) -> int:
        """Ciphertext-by-ciphertext multiplications on the longest path through this op."""
        return 0


def _batch(a: IntArray) -> IntArray:
    return np.asarray(a)[None]


@dataclass(frozen=True, eq=False)
class _Weighted(IntOp):
    """Shared interval logic for ops linear in x with integer weights and bias."""

    weight: IntArray
    bias: IntArray

    def _apply(self, x: IntArray, w: IntArray, bound: int) -> IntArray:
        raise NotImplementedError

    def _abs_estimate(self, m: IntArray) -> int:
        w = np.abs(np.asarray(self.weight, dtype=np.float64))
        return _float_bound(self._apply_float(np.asarray(m, dtype=np.float64), w))

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
        w = np.asarray(self.weight, dtype=object)
        wpos = np.where(w > 0, w, 0)
        wneg = np.where(w < 0, w, 0)
        new_hi = self._apply(_batch(hi), wpos, est) + self._apply(_batch(lo), wneg, est)
        new_lo = self._apply(_batch(lo), wpos, est) + self._apply(_batch(hi), wneg, est)
        return self._with_bias(new_lo, est)[0], self._with_bias(new_hi, est)[0]

    def partial_bound(self, m: IntArray) -> IntArray:
        est = self._abs_estimate(m)
        weighted = self._apply(_batch(m), np.abs(np.asarray(self.weight, dtype=object)), est)[0]
        return exact.to_python_ints(weighted) + np.abs(exact.to_python_ints(self.bias))

    def arrays(self) -> dict[str, IntArray]:
        return {"weight": self.weight, "bias": self.bias}


@dataclass(frozen=True, eq=False)
class IntLinear(_Weighted):
    """y = W x + b with integer W of shape (out, in) and integer b of shape (out,)."""

    kind: ClassVar[str] = "linear"

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
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "padding", _pair(self.padding))

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
class IntSumPool2d(IntOp):
    """Window sums: average pooling whose 1/k² has moved into the output scale."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    kind: ClassVar[str] = "sumpool2d"

    def __post_init__(self) -> None:
        for attr in ("kernel", "stride", "padding"):
            object.__setattr__(self, attr, _pair(getattr(self, attr)))

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

    def attrs(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}


@dataclass(frozen=True, eq=False)
class IntFlatten(IntOp):
    """Reshape (n, *shape) to (n, prod(shape))."""

    kind: ClassVar[str] = "flatten"

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
    kind: ClassVar[str] = "add_const"

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return exact.as_exact(exact.as_exact(x, bound) + exact.as_exact(self.constant, bound), bound)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        c = exact.to_python_ints(self.constant)
        return np.asarray(lo, dtype=object) + c, np.asarray(hi, dtype=object) + c

    def partial_bound(self, m: IntArray) -> IntArray:
        return np.asarray(m, dtype=object) + np.abs(exact.to_python_ints(self.constant))

    def arrays(self) -> dict[str, IntArray]:
        return {"constant": self.constant}


def _square_interval(lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
    lo, hi = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
    sq_lo, sq_hi = lo * lo, hi * hi
    top = np.maximum(sq_lo, sq_hi)
    bottom = np.where((lo <= 0) & (hi >= 0), 0, np.minimum(sq_lo, sq_hi))
    return bottom, top


@dataclass(frozen=True, eq=False)
class IntSquare(IntOp):
    """y = x² element-wise: one ciphertext multiplication."""

    kind: ClassVar[str] = "square"

    def forward(self, x: IntArray, bound: int) -> IntArray:
        xe = exact.as_exact(x, bound)
        return xe * xe

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        return _square_interval(lo, hi)

    def partial_bound(self, m: IntArray) -> IntArray:
        mo = np.asarray(m, dtype=object)
        return mo * mo

    @property
    def multiplicative_depth(self) -> int:
        return 1


@dataclass(frozen=True, eq=False)
class IntPoly(IntOp):
    """y = sum_i A_i x^i element-wise, with integer coefficients A of shape (degree+1, *broadcast).

    ``coeffs[i]`` broadcasts over one input (per-channel coefficients carry the
    per-channel input scales).  Evaluated term by term; ``partial_bound`` is
    ``sum_i |A_i| m^i``, which covers every term and partial sum.
    """

    coeffs: IntArray
    kind: ClassVar[str] = "poly"

    @property
    def degree(self) -> int:
        """Highest power."""
        return int(self.coeffs.shape[0]) - 1

    def forward(self, x: IntArray, bound: int) -> IntArray:
        xe = exact.as_exact(x, bound)
        coeffs = exact.as_exact(self.coeffs, bound)
        total = np.zeros_like(xe) + coeffs[0]
        power = np.ones_like(xe)
        for i in range(1, self.degree + 1):
            power = power * xe
            total = total + coeffs[i] * power
        return total

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        lo_o, hi_o = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
        out_lo = np.zeros(np.broadcast(lo_o, self.coeffs[0]).shape, dtype=object) + exact.to_python_ints(self.coeffs[0])
        out_hi = out_lo.copy()
        for i in range(1, self.degree + 1):
            p_lo, p_hi = _power_interval(lo_o, hi_o, i)
            a = exact.to_python_ints(self.coeffs[i])
            t_lo, t_hi = np.minimum(a * p_lo, a * p_hi), np.maximum(a * p_lo, a * p_hi)
            out_lo, out_hi = out_lo + t_lo, out_hi + t_hi
        return out_lo, out_hi

    def partial_bound(self, m: IntArray) -> IntArray:
        mo = np.asarray(m, dtype=object)
        total = np.abs(exact.to_python_ints(self.coeffs[0])) + np.zeros_like(mo)
        for i in range(1, self.degree + 1):
            total = total + np.abs(exact.to_python_ints(self.coeffs[i])) * mo**i
        return total

    def arrays(self) -> dict[str, IntArray]:
        return {"coeffs": self.coeffs}

    @property
    def multiplicative_depth(self) -> int:
        return max(0, math.ceil(math.log2(self.degree))) if self.degree > 1 else 0


def _power_interval(lo: IntArray, hi: IntArray, i: int) -> tuple[IntArray, IntArray]:
    """Exact interval of x**i for x in [lo, hi] (odd powers are monotone)."""
    a, b = lo**i, hi**i
    if i % 2 == 1:
        return a, b
    bottom = np.where((lo <= 0) & (hi >= 0), 0, np.minimum(a, b))
    return bottom, np.maximum(a, b)


OP_TYPES: dict[str, type[IntOp]] = {
    cls.kind: cls for cls in (IntLinear, IntConv2d, IntSumPool2d, IntFlatten, IntAddConst, IntSquare, IntPoly)
}


def op_to_parts(op: IntOp, prefix: str, arrays: dict[str, IntArray]) -> dict[str, Any]:
    """JSON description of ``op`` whose arrays go into ``arrays`` under ``prefix.<key>``.

    :func:`op_from_parts` inverts it.
    """
    names = {}
    for key, value in op.arrays().items():
        names[key] = f"{prefix}.{key}"
        arrays[names[key]] = np.asarray(value)
    return {"kind": op.kind, "name": op.name, "attrs": op.attrs(), "arrays": names}


def op_from_parts(kind: str, name: str, attrs: dict[str, Any], arrays: dict[str, IntArray]) -> IntOp:
    """Rebuild an op from what :meth:`IntOp.attrs` and :meth:`IntOp.arrays` wrote.

    Raises:
        ArtifactError: unknown kind or missing fields.
    """
    cls = OP_TYPES.get(kind)
    if cls is None:
        raise ArtifactError(f"unknown integer op kind {kind!r}; known: {sorted(OP_TYPES)}")
    try:
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
        return cls(name=name, **converted, **arrays)
    except TypeError as exc:
        raise ArtifactError(f"op {name!r} of kind {kind!r} is malformed: {exc}") from exc
