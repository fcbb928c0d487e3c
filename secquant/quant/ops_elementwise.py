"""Element-wise integer ops: square, polynomial, and the fixed-point requantization.

Each acts on every feature alone, so a graph of them can be laid out as one
stage over a vector of features (see :mod:`secquant.quant.linearize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError
from secquant.quant import exact
from secquant.quant.ops_base import IntArray, IntOp, OpKind, max_abs

__all__ = ["IntPoly", "IntRequantize", "IntSquare", "requantize_exact"]

#: Largest multiplier a requantize op may carry (it is a plaintext integer).
MAX_MULTIPLIER = 2**31 - 1
#: Largest shift a requantize op may carry.
MAX_SHIFT = 4096


def _square_interval(lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
    lo, hi = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
    sq_lo, sq_hi = lo * lo, hi * hi
    top = np.maximum(sq_lo, sq_hi)
    bottom = np.where((lo <= 0) & (hi >= 0), 0, np.minimum(sq_lo, sq_hi))
    return bottom, top


@dataclass(frozen=True, eq=False)
class IntSquare(IntOp):
    """y = x² element-wise: one ciphertext multiplication."""

    kind: ClassVar[OpKind] = OpKind.SQUARE
    elementwise: ClassVar[bool] = True

    def forward(self, x: IntArray, bound: int) -> IntArray:
        xe = exact.as_exact(x, bound)
        return xe * xe

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        return _square_interval(lo, hi)

    def partial_bound(self, m: IntArray) -> IntArray:
        mo = np.asarray(m, dtype=object)
        return mo * mo

    def runtime_bound(self, m: int) -> int:
        return m * m

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
    kind: ClassVar[OpKind] = OpKind.POLY
    elementwise: ClassVar[bool] = True

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

    def runtime_bound(self, m: int) -> int:
        terms = sum(max_abs(self.coeffs[i]) * m**i for i in range(self.degree + 1))
        return max(terms, m**self.degree)

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


def requantize_exact(x: IntArray, multiplier: IntArray, shift: IntArray, bound: int) -> IntArray:
    """``floor((x·M + h) / 2**s)`` element-wise with ``h = 2**(s-1)`` for ``s >= 1`` and ``h = 0`` for ``s = 0``.

    Args:
        x: Integers, batch first.
        multiplier: M >= 0, broadcast over one example of ``x``.
        shift: s >= 0, same broadcast shape.
        bound: An upper bound on ``|x·M| + h`` (picks int64 or Python ints).
    """
    s_max = max_abs(shift)
    if bound < 2**62 and s_max <= 62:
        m = np.asarray(multiplier).astype(np.int64)
        s = np.asarray(shift).astype(np.int64)
        half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
        return np.right_shift(np.asarray(x).astype(np.int64) * m + half, s)
    m_o, s_o = exact.to_python_ints(multiplier), exact.to_python_ints(shift)
    half_o = np.vectorize(lambda v: (1 << (v - 1)) if v > 0 else 0, otypes=[object])(s_o) if s_o.size else s_o
    return np.right_shift(exact.to_python_ints(x) * m_o + half_o, s_o)


@dataclass(frozen=True, eq=False)
class IntRequantize(IntOp):
    """Fixed-point rescaling (Jacob et al. 2018), rounded half up and clipped:

        y = min(L, max(-L, floor((x·M + 2**(s-1)) / 2**s)))      (s >= 1)
        y = min(L, max(-L, x·M))                                 (s = 0)

    ``multiplier`` (M, int in [0, 2**31)), ``shift`` (s, int in [0, 4096]) and
    ``limit`` (L >= 1) broadcast over one input, one value per channel or per
    feature; M = 1, s = 0 with L at least the input's bound leaves a feature
    unchanged.  The real value moves to scale ``scale · M / 2**s``; the rounding
    adds at most 1/2 in output units.  Whether the clip can bind for inputs in
    given bounds is :meth:`saturates` (never, when M and s were chosen from
    proven bounds).  Monotone in x, so the interval is exact.
    """

    multiplier: IntArray
    shift: IntArray
    limit: IntArray
    kind: ClassVar[OpKind] = OpKind.REQUANTIZE
    elementwise: ClassVar[bool] = True

    def __post_init__(self) -> None:
        m, s, lim = np.asarray(self.multiplier), np.asarray(self.shift), np.asarray(self.limit)
        if any(a.dtype.kind not in "iuO" for a in (m, s, lim)) or not m.shape == s.shape == lim.shape:
            raise ArtifactError(f"requantize op {self.name!r}: multiplier, shift and limit must be integer arrays of one shape")
        if m.size and (int(np.min(m)) < 0 or int(np.max(m)) > MAX_MULTIPLIER):
            raise ArtifactError(f"requantize op {self.name!r}: multipliers must lie in [0, {MAX_MULTIPLIER}]")
        if s.size and (int(np.min(s)) < 0 or int(np.max(s)) > MAX_SHIFT):
            raise ArtifactError(f"requantize op {self.name!r}: shifts must lie in [0, {MAX_SHIFT}]")
        if lim.size and int(np.min(lim)) < 1:
            raise ArtifactError(f"requantize op {self.name!r}: limits must be at least 1")
        object.__setattr__(self, "multiplier", m.astype(np.int64))
        object.__setattr__(self, "shift", s.astype(np.int64))
        object.__setattr__(self, "limit", exact.as_exact(lim, max_abs(lim)))

    @property
    def factor(self) -> NDArray[np.float64]:
        """M / 2**s per channel or feature: the real factor the rounding approximates."""
        return self.multiplier.astype(np.float64) * np.exp2(-self.shift.astype(np.float64))

    def _half(self) -> int:
        s_max = max_abs(self.shift)
        return (1 << (s_max - 1)) if s_max > 0 else 0

    def _clip(self, y: IntArray) -> IntArray:
        if np.asarray(y).dtype == object:
            lim = exact.to_python_ints(self.limit)
            return np.minimum(np.maximum(y, -lim), lim)
        lim = np.asarray(self.limit)
        if lim.dtype == object:  # some limit is past int64: clip in Python ints, the result fits y's dtype
            lim = exact.to_python_ints(lim)
            return np.minimum(np.maximum(np.asarray(y).astype(object), -lim), lim).astype(np.asarray(y).dtype)
        return np.minimum(np.maximum(y, -lim), lim)

    def rounded(self, x: IntArray, bound: int) -> IntArray:
        """The rounding without the clip (what a scheme that cannot compare computes)."""
        return requantize_exact(x, self.multiplier, self.shift, bound)

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return self._clip(self.rounded(x, bound))

    def _unclipped_interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        big = max(max_abs(lo), max_abs(hi)) * max_abs(self.multiplier) + self._half() + 2**62
        return (requantize_exact(np.asarray(lo, dtype=object)[None], self.multiplier, self.shift, big)[0],
                requantize_exact(np.asarray(hi, dtype=object)[None], self.multiplier, self.shift, big)[0])

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        a, b = self._unclipped_interval(lo, hi)
        return self._clip(np.asarray(a, dtype=object)), self._clip(np.asarray(b, dtype=object))

    def saturates(self, lo: IntArray, hi: IntArray) -> bool:
        """Whether the clip binds for some input in [lo, hi] (element-wise bounds of one input)."""
        a, b = self._unclipped_interval(lo, hi)
        lim = exact.to_python_ints(self.limit)
        return bool(np.any(np.asarray(a, dtype=object) < -lim) or np.any(np.asarray(b, dtype=object) > lim))

    def partial_bound(self, m: IntArray) -> IntArray:
        s = exact.to_python_ints(self.shift)
        half = np.vectorize(lambda v: (1 << (v - 1)) if v > 0 else 0, otypes=[object])(s) if s.size else s
        return np.asarray(m, dtype=object) * exact.to_python_ints(self.multiplier) + half

    def runtime_bound(self, m: int) -> int:
        return m * max_abs(self.multiplier) + self._half()

    def arrays(self) -> dict[str, IntArray]:
        return {"multiplier": self.multiplier, "shift": self.shift, "limit": self.limit}
