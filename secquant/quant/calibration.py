"""Calibration: choose Q's scale and offset from data.

Three range estimators (frozen dataclasses, so a choice is a value, not a string):

* :class:`MinMax`: the observed extremes;
* :class:`Percentile`: clip the tails at a percentile;
* :class:`MSEOptimal`: the clipping range that minimises the squared
  quantization error at the target bit width.

Combined with :class:`Symmetry` and a granularity (:class:`PerTensor` or
:class:`PerChannel`), :func:`calibrate` returns :class:`QuantParams`.
Clipping estimators return parameters that saturate (never wrap) outside
their range.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import Domain, OnOverflow, QuantParams, Rounding, coerce_enum

__all__ = [
    "Granularity",
    "MSEOptimal",
    "MinMax",
    "PerChannel",
    "PerTensor",
    "Percentile",
    "RangeMethod",
    "Symmetry",
    "calibrate",
    "check_bits",
    "qmax",
    "quantize_weight",
    "symmetric_scale",
]


def check_bits(bits: int, what: str = "bits") -> int:
    """Validate a bit width in [2, 32].

    Raises:
        ConfigError: not an int in range.
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 32:
        raise ConfigError(f"{what} must be an int in [2, 32], got {bits!r}")
    return int(bits)


def qmax(bits: int) -> int:
    """Largest magnitude of a symmetric signed ``bits``-bit integer: 2**(bits-1) - 1."""
    return 2 ** (check_bits(bits) - 1) - 1


class Symmetry(enum.Enum):
    """Symmetric: offset 0 and a window centred on zero.  Asymmetric: the range maps onto all levels."""

    SYMMETRIC = "symmetric"
    ASYMMETRIC = "asymmetric"


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor."""


@dataclass(frozen=True)
class PerChannel:
    """One scale per index along ``axis``."""

    axis: int = 0


Granularity = PerTensor | PerChannel


def _reduce_axes(x: NDArray[np.float64], granularity: Granularity) -> tuple[int, ...] | None:
    if isinstance(granularity, PerTensor):
        return None
    if not isinstance(granularity, PerChannel):
        raise ConfigError(f"granularity must be PerTensor() or PerChannel(axis), got {granularity!r}")
    axis = granularity.axis % x.ndim if x.ndim else 0
    return tuple(a for a in range(x.ndim) if a != axis)


@dataclass(frozen=True)
class MinMax:
    """The observed minimum and maximum."""

    def range(self, x: NDArray[np.float64], axes: tuple[int, ...] | None, bits: int, symmetry: Symmetry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (lo, hi), reduced over ``axes`` (all axes if None)."""
        return np.min(x, axis=axes), np.max(x, axis=axes)


@dataclass(frozen=True)
class Percentile:
    """Clip at the ``percentile``-th and (100 - ``percentile``)-th percentiles."""

    percentile: float = 99.99

    def __post_init__(self) -> None:
        if not 50.0 < float(self.percentile) <= 100.0:
            raise ConfigError(f"percentile must lie in (50, 100], got {self.percentile}")

    def range(self, x: NDArray[np.float64], axes: tuple[int, ...] | None, bits: int, symmetry: Symmetry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return (lo, hi) at the configured percentiles."""
        return (
            np.percentile(x, 100.0 - self.percentile, axis=axes),
            np.percentile(x, self.percentile, axis=axes),
        )


@dataclass(frozen=True)
class MSEOptimal:
    """Shrink the min-max range by the factor in [``min_ratio``, 1] that minimises squared error.

    ``grid`` candidate factors are tried, each channel choosing its own.
    """

    grid: int = 64
    min_ratio: float = 0.2

    def __post_init__(self) -> None:
        if int(self.grid) < 2:
            raise ConfigError(f"grid must be at least 2, got {self.grid}")
        if not 0.0 < float(self.min_ratio) < 1.0:
            raise ConfigError(f"min_ratio must lie in (0, 1), got {self.min_ratio}")

    def range(self, x: NDArray[np.float64], axes: tuple[int, ...] | None, bits: int, symmetry: Symmetry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return the (lo, hi) whose round trip has the least squared error."""
        lo, hi = MinMax().range(x, axes, bits, symmetry)
        best_err = np.full(np.shape(lo), np.inf)
        best_lo, best_hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
        for ratio in np.linspace(self.min_ratio, 1.0, int(self.grid)):
            c_lo, c_hi = lo * ratio, hi * ratio
            err = _roundtrip_error(x, c_lo, c_hi, axes, bits, symmetry)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_lo, best_hi = np.where(better, c_lo, best_lo), np.where(better, c_hi, best_hi)
        return best_lo, best_hi


RangeMethod = MinMax | Percentile | MSEOptimal


def _widest(width: NDArray[np.float64], levels: float) -> NDArray[np.float64]:
    """``levels / width`` per entry; an empty range takes the widest entry's scale (1.0 if all are empty).

    A channel whose range is empty (a pruned filter: every weight zero) gets the
    per-tensor scale, not 1.0: the next layer divides its weights by each input
    feature's scale, and a scale hundreds of times below its neighbours' would
    round every other feature's weight to zero.
    """
    top = float(np.max(width, initial=0.0))
    return levels / np.where(width > 0, width, top if top > 0 else levels)


def symmetric_scale(lo: ArrayLike, hi: ArrayLike, bits: int) -> NDArray[np.float64]:
    """C = qmax(bits) / max(|lo|, |hi|); an all-zero range takes the widest range's C (1.0 if every range is zero)."""
    m = np.maximum(np.abs(np.asarray(lo, dtype=float)), np.abs(np.asarray(hi, dtype=float)))
    return _widest(m, float(qmax(bits)))


def _scale_offset(lo: NDArray[np.float64], hi: NDArray[np.float64], bits: int, symmetry: Symmetry) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if symmetry is Symmetry.SYMMETRIC:
        return symmetric_scale(lo, hi, bits), np.zeros_like(np.asarray(lo, dtype=float))
    c = _widest(np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float), float(2**bits - 1))
    return c, -c * lo


def _roundtrip_error(x: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64], axes: tuple[int, ...] | None, bits: int, symmetry: Symmetry) -> NDArray[np.float64]:
    c, d = _scale_offset(lo, hi, bits, symmetry)
    if axes is not None:
        c, d = np.expand_dims(c, axes), np.expand_dims(d, axes)
    top = qmax(bits) if symmetry is Symmetry.SYMMETRIC else 2**bits - 1
    bottom = -top if symmetry is Symmetry.SYMMETRIC else 0
    v = np.clip(np.floor(c * x + d + 0.5), bottom, top)
    return np.sum((x - (v - d) / c) ** 2, axis=axes)


def calibrate(
    x: ArrayLike,
    bits: int = 8,
    *,
    method: RangeMethod = MinMax(),
    symmetry: Symmetry | str = Symmetry.SYMMETRIC,
    granularity: Granularity = PerTensor(),
    rounding: Rounding | str = Rounding.NEAREST,
) -> QuantParams:
    """Fit quantization parameters to data.

    Symmetric parameters have d = 0 and the CENTERED window of p = 2**bits;
    asymmetric ones map [lo, hi] onto [0, 2**bits - 1] in the UNSIGNED window.
    MinMax parameters raise on values outside the calibrated range; clipping
    methods (Percentile, MSEOptimal) saturate.

    Raises:
        ConfigError: empty or non-finite data, or an invalid choice.
    """
    bits = check_bits(bits)
    symmetry = coerce_enum(symmetry, Symmetry, "symmetry")
    data = np.asarray(x, dtype=np.float64)
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise ConfigError("calibration data must be non-empty and finite")
    if not isinstance(method, (MinMax, Percentile, MSEOptimal)):
        raise ConfigError(f"method must be MinMax(), Percentile(p) or MSEOptimal(), got {method!r}")
    axes = _reduce_axes(data, granularity)
    lo, hi = method.range(data, axes, bits, symmetry)
    c, d = _scale_offset(np.asarray(lo), np.asarray(hi), bits, symmetry)
    axis = None if isinstance(granularity, PerTensor) else granularity.axis
    return QuantParams(
        scale=c,
        offset=d,
        modulus=2**bits,
        rounding=rounding,
        domain=Domain.CENTERED if symmetry is Symmetry.SYMMETRIC else Domain.UNSIGNED,
        axis=axis,
        on_overflow=OnOverflow.RAISE if isinstance(method, MinMax) else OnOverflow.SATURATE,
    )


def quantize_weight(
    a: ArrayLike,
    bits: int,
    granularity: Granularity = PerChannel(0),
    method: RangeMethod = MinMax(),
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Quantize real weights symmetrically to integers in ±qmax(bits), rounding to nearest.

    Args:
        a: Real weights; axis 0 is the output channel.
        bits: Bit width of the integers.
        granularity: PerChannel (over axis 0) or PerTensor.
        method: Range estimator; clipping methods saturate.

    Returns:
        (integers shaped like ``a``, scale per output channel of shape (a.shape[0],)),
        so that ``a ≈ integers / scale`` along axis 0.
    """
    arr = np.asarray(a, dtype=np.float64)
    if isinstance(granularity, PerChannel) and granularity.axis != 0:
        raise ConfigError("weights are quantized per output channel: PerChannel(axis=0)")
    params = calibrate(arr, bits, method=method, symmetry=Symmetry.SYMMETRIC, granularity=granularity)
    q = params.integers(arr)
    scale = np.broadcast_to(np.asarray(params.scale, dtype=np.float64), (arr.shape[0],)).copy()
    return q.astype(np.int64), scale
