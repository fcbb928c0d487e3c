"""Element-wise stages of the shared lowering: :class:`Square`, :class:`Poly` and :class:`Requantize`.

Each maps every feature alone (same input and output shape).  See
:mod:`secquant.quant.lowering` for the API every stage shares.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.intops import max_abs
from secquant.quant.stage_base import (
    IntArray,
    StageBase,
    StageKind,
    bound_vector,
    compact,
    flat_batch,
    mod_int64,
)

__all__ = ["Poly", "Requantize", "Rounding", "Square"]

@dataclass(frozen=True, eq=False)
class _Elementwise(StageBase):
    """A stage that maps each feature alone: the same input and output shape."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.in_shape != self.out_shape:
            raise ConfigError(f"element-wise stage {self.names}: shapes {self.in_shape} -> {self.out_shape} differ")

    @property
    def dim(self) -> int:
        """Features."""
        return self.in_features


@dataclass(frozen=True, eq=False)
class Square(_Elementwise):
    """``y = x * x`` element-wise."""

    kind: ClassVar[StageKind] = StageKind.SQUARE  #: :attr:`StageKind.SQUARE`

    def propagate(self, m: Any) -> IntArray:
        """``m * m`` per feature."""
        mv = bound_vector(m, self.dim, "m")
        return mv * mv

    def apply(self, x: Any) -> IntArray:
        """Exact ``x * x`` for integers of shape (n, *in_shape)."""
        flat = flat_batch(x, self.dim)
        top = max_abs(flat)
        xe = exact.as_exact(flat, top * top)
        return (xe * xe).reshape(len(flat), *self.out_shape)


@dataclass(frozen=True, eq=False)
class Poly(_Elementwise):
    """``y = sum_i coeffs[i] * x**i`` element-wise.

    Attributes:
        coeffs: Exact integers of shape (degree+1, dim): ``coeffs[i, j]`` multiplies
            ``x_j**i``; int64 when every entry fits, else object.
    """

    coeffs: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "coeffs", compact(self.coeffs))
        if self.coeffs.ndim != 2 or self.coeffs.shape[0] < 1 or self.coeffs.shape[1] != self.dim:
            raise ConfigError(f"poly stage {self.names}: coeffs of shape {self.coeffs.shape}; expected "
                              f"(degree+1, {self.dim})")

    kind: ClassVar[StageKind] = StageKind.POLY  #: :attr:`StageKind.POLY`

    @property
    def degree(self) -> int:
        """Highest power (zero top coefficients included; see :meth:`trimmed`)."""
        return int(self.coeffs.shape[0]) - 1

    @property
    def depth(self) -> int:
        """Ciphertext multiplications on the longest path (x**k as x**(k//2) * x**(k - k//2)): ceil(log2 degree)."""
        return max(0, (self.degree - 1).bit_length())

    def trimmed(self) -> Poly:
        """The same map with all-zero top coefficients dropped (down to degree 1; quantization may zero them)."""
        keep = self.coeffs.shape[0]
        while keep > 2 and not np.any(self.coeffs[keep - 1]):
            keep -= 1
        if keep == self.coeffs.shape[0]:
            return self
        return Poly(self.names, self.in_shape, self.out_shape, self.in_bound, self.out_bound, self.coeffs[:keep])

    def propagate(self, m: Any) -> IntArray:
        """``sum_i |coeffs[i]| m**i`` per feature: bounds every term and partial sum."""
        mv = bound_vector(m, self.dim, "m")
        absc = np.abs(exact.to_python_ints(self.coeffs))
        total = absc[0].copy()
        power = np.ones_like(mv)
        for i in range(1, self.degree + 1):
            power = power * mv
            total = total + absc[i] * power
        return total

    def apply(self, x: Any) -> IntArray:
        """Exact polynomial for integers of shape (n, *in_shape)."""
        flat = flat_batch(x, self.dim)
        top = max_abs(flat)
        bound = sum(max_abs(self.coeffs[i]) * top**i for i in range(self.degree + 1)) + top**self.degree + 1
        xe = exact.as_exact(flat, bound)
        c = exact.as_exact(self.coeffs, bound)
        total = np.zeros_like(xe) + c[0]
        power = np.ones_like(xe)
        for i in range(1, self.degree + 1):
            power = power * xe
            total = total + c[i] * power
        return total.reshape(len(flat), *self.out_shape)

    def reduced(self, t: int) -> NDArray[np.int64]:
        """``coeffs mod t`` as int64 in [0, t).

        Raises:
            ConfigError: ``t`` is not in [2, 2**63).
        """
        return mod_int64(self.coeffs, t)


class Rounding(enum.Enum):
    """The rounding rule of a :class:`Requantize` stage: that of :class:`~secquant.quant.intops.IntRequantize`."""

    #: ``floor((x·M + 2**(s-1)) / 2**s)`` for s >= 1 (nearest, ties toward +inf); ``x·M`` exactly for s = 0.
    HALF_UP = "half_up"


def _halves(shift: IntArray) -> IntArray:
    """``2**(s-1)`` per feature (0 where s = 0), Python ints."""
    return np.array([(1 << (int(v) - 1)) if int(v) > 0 else 0 for v in np.asarray(shift).reshape(-1)], dtype=object)


@dataclass(frozen=True, eq=False)
class Requantize(_Elementwise):
    """``y = min(L, max(-L, floor((x·M + 2**(s-1)) / 2**s)))`` element-wise (``x·M`` when s = 0).

    The fixed-point rescale of :class:`~secquant.quant.intops.IntRequantize`
    (Jacob et al. 2018), one multiplier, shift and clip limit per feature.  The
    real value moves by the factor ``M / 2**s``; the rounding adds at most 1/2
    (:attr:`rounding_error`).  A scheme that cannot round or compare (CKKS)
    computes ``x·M/2**s`` instead; it agrees with :meth:`apply` up to the
    rounding whenever the clip does not bind (:attr:`can_clip` says whether it
    can, for inputs within ``in_bound``).

    Attributes:
        multiplier: M per feature, int64 in [0, 2**31).
        shift: s per feature, int64 in [0, 4096].
        limit: L per feature (>= 1), exact integers.
        rounding: The rule (:attr:`Rounding.HALF_UP`, the only one the op has).
    """

    multiplier: IntArray = field(repr=False)
    shift: IntArray = field(repr=False)
    limit: IntArray = field(repr=False)
    rounding: Rounding = Rounding.HALF_UP

    kind: ClassVar[StageKind] = StageKind.REQUANTIZE  #: :attr:`StageKind.REQUANTIZE`

    def __post_init__(self) -> None:
        super().__post_init__()
        arrays = [np.asarray(a).reshape(-1) for a in (self.multiplier, self.shift, self.limit)]
        if any(a.dtype.kind not in "iuO" or a.size != self.dim for a in arrays):
            raise ConfigError(f"requantize stage {self.names}: multiplier, shift and limit must be {self.dim} integers each")
        m, s, lim = (exact.to_python_ints(a) for a in arrays)
        if self.dim and (min(m) < 0 or max(m) >= 2**31 or min(s) < 0 or max(s) > 4096 or min(lim) < 1):
            raise ConfigError(f"requantize stage {self.names}: need 0 <= M < 2**31, 0 <= s <= 4096 and L >= 1")
        if not isinstance(self.rounding, Rounding):
            raise ConfigError(f"requantize stage {self.names}: rounding must be a Rounding, got {self.rounding!r}")
        object.__setattr__(self, "multiplier", m.astype(np.int64))
        object.__setattr__(self, "shift", s.astype(np.int64))
        object.__setattr__(self, "limit", compact(lim))

    @property
    def factor(self) -> NDArray[np.float64]:
        """``M / 2**s`` per feature: the real factor the rounding approximates."""
        return self.multiplier.astype(np.float64) * np.exp2(-self.shift.astype(np.float64))

    @property
    def rounding_error(self) -> NDArray[np.float64]:
        """Per feature, the largest ``|rounded(x) - x·M/2**s|``: 1/2 where s >= 1, 0 where s = 0 (exact)."""
        return np.where(self.shift > 0, 0.5, 0.0)

    @property
    def is_identity(self) -> bool:
        """Whether every feature passes unchanged (M = 1, s = 0, and the clip cannot bind): a carried feature."""
        return bool(np.all(self.multiplier == 1) and np.all(self.shift == 0)) and not self.can_clip

    def propagate(self, m: Any) -> IntArray:
        """``m·M + 2**(s-1)`` per feature: bounds the product and the rounding offset added to it."""
        mv = bound_vector(m, self.dim, "m")
        return mv * exact.to_python_ints(self.multiplier) + _halves(self.shift)

    def unclipped(self, m: Any) -> IntArray:
        """Per feature, the largest ``|floor((x·M + 2**(s-1)) / 2**s)|`` for ``|x| <= m`` (the rounding alone)."""
        mv = bound_vector(m, self.dim, "m")
        hi = np.asarray(self.rounded(mv[None].astype(object))[0]).reshape(-1)
        lo = np.asarray(self.rounded((-mv)[None].astype(object))[0]).reshape(-1)
        return np.maximum(np.abs(exact.to_python_ints(hi)), np.abs(exact.to_python_ints(lo)))

    @cached_property
    def can_clip(self) -> bool:
        """Whether the clip binds for some input within ``in_bound`` (never when M, s come from proven ranges)."""
        return bool(np.any(self.unclipped(self.in_bound) > exact.to_python_ints(self.limit)))

    def rounded(self, x: Any) -> IntArray:
        """Exact ``floor((x·M + 2**(s-1)) / 2**s)`` without the clip, for integers of shape (n, *in_shape)."""
        flat = flat_batch(x, self.dim)
        bound = max_abs(flat) * max_abs(self.multiplier) + max_abs(_halves(self.shift)) + 1
        if bound < 2**62 and max_abs(self.shift) <= 62:
            xe = flat.astype(np.int64)
            half = np.where(self.shift > 0, np.left_shift(np.int64(1), np.maximum(self.shift - 1, 0)), 0)
            return np.right_shift(xe * self.multiplier + half, self.shift).reshape(len(flat), *self.out_shape)
        xo = exact.to_python_ints(flat)
        out = np.right_shift(xo * exact.to_python_ints(self.multiplier) + _halves(self.shift), exact.to_python_ints(self.shift))
        return exact.as_exact(out, max_abs(out) + 1).reshape(len(flat), *self.out_shape)

    def apply(self, x: Any) -> IntArray:
        """Exact requantization (rounding, then the clip) for integers of shape (n, *in_shape)."""
        y = np.asarray(self.rounded(x)).reshape(len(np.asarray(x)), -1)
        lim = exact.to_python_ints(self.limit)
        if y.dtype == object or np.asarray(self.limit).dtype == object:
            out = np.minimum(np.maximum(exact.to_python_ints(y), -lim), lim)
            out = exact.as_exact(out, max_abs(out) + 1)
        else:
            out = np.minimum(np.maximum(y, -np.asarray(self.limit)), np.asarray(self.limit))
        return out.reshape(len(y), *self.out_shape)
