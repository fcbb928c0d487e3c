"""Pure quantization primitives: Q(x) = floor(C·x + d) mod p, its inverse, and the centered lift.

Nothing here holds state.  Every function refuses to wrap silently: a value
whose integer ``v = round(C·x + d)`` leaves the window of integers that the
modulus represents raises :class:`~secquant.errors.ModulusOverflowError`,
unless the caller opts in to saturation or to the literal modular behaviour
with :class:`OnOverflow`.

Two windows are offered (:class:`Domain`):

* ``UNSIGNED``: residues stand for ``[0, p)``, the method's literal reading.
  The textbook example C=256, d=128, p=256 on ``x in [0, 1)`` leaves this
  window for every ``x >= 0.5`` and is refused.
* ``CENTERED``: residues stand for ``(-p/2, p/2]``, for signed values.  This is
  what the integer model and every encrypted backend use.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError, ModulusOverflowError

__all__ = [
    "Domain",
    "OnOverflow",
    "QuantParams",
    "Rounding",
    "centered_lift",
    "coerce_enum",
    "dequantize",
    "modulus_needed",
    "quantize",
    "round_values",
    "window",
]

#: Largest modulus the float64 path of :func:`quantize` handles exactly.
MAX_FLOAT_MODULUS = 2**53


class Rounding(enum.Enum):
    """How ``C·x + d`` becomes an integer."""

    FLOOR = "floor"  #: floor(y), as the method states; error in [0, 1/C).
    NEAREST = "nearest"  #: floor(y + 1/2); error at most 1/(2C).
    STOCHASTIC = "stochastic"  #: floor(y + U), U ~ Uniform[0, 1); unbiased.


class Domain(enum.Enum):
    """Which integers the residues ``[0, p)`` stand for."""

    UNSIGNED = "unsigned"  #: [0, p - 1]
    CENTERED = "centered"  #: (-p/2, p/2], i.e. [-(p-1)//2, p//2]


class OnOverflow(enum.Enum):
    """What to do with a value outside the modulus window."""

    RAISE = "raise"  #: raise ModulusOverflowError (the default everywhere)
    SATURATE = "saturate"  #: clamp to the window (clipping calibration)
    WRAP = "wrap"  #: the literal ``mod p``; an explicit, documented opt-in


E = TypeVar("E", bound=enum.Enum)


def coerce_enum(value: E | str, enum_cls: type[E], what: str) -> E:
    """Return ``value`` as a member of ``enum_cls``, accepting its lower-case value.

    Raises:
        ConfigError: ``value`` names no member.
    """
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if member.value == value.lower():
                return member
    choices = ", ".join(repr(m.value) for m in enum_cls)
    raise ConfigError(f"{what} must be one of {choices} (or {enum_cls.__name__}), got {value!r}")


def _check_modulus(modulus: int, *, limit: int | None = None) -> int:
    if isinstance(modulus, bool) or not isinstance(modulus, (int, np.integer)):
        raise ConfigError(f"modulus must be an int, got {type(modulus).__name__}")
    modulus = int(modulus)
    if modulus < 2:
        raise ConfigError(f"modulus must be at least 2, got {modulus}")
    if limit is not None and modulus > limit:
        raise ConfigError(f"modulus {modulus} exceeds {limit}, the largest this path handles exactly")
    return modulus


def window(modulus: int, domain: Domain | str = Domain.CENTERED) -> tuple[int, int]:
    """Return the inclusive integer window ``(lo, hi)`` that residues mod ``modulus`` stand for.

    Raises:
        ConfigError: the modulus is not an int >= 2, or the domain is unknown.
    """
    p = _check_modulus(modulus)
    if coerce_enum(domain, Domain, "domain") is Domain.UNSIGNED:
        return 0, p - 1
    return -((p - 1) // 2), p // 2


def modulus_needed(vmin: int, vmax: int, domain: Domain | str = Domain.CENTERED) -> int | None:
    """Return the smallest modulus whose window holds every integer in ``[vmin, vmax]``.

    Returns ``None`` when no modulus can (negative values in the UNSIGNED domain).
    """
    vmin, vmax = int(vmin), int(vmax)
    if coerce_enum(domain, Domain, "domain") is Domain.UNSIGNED:
        return None if vmin < 0 else max(vmax + 1, 2)
    return max(2 * vmax, 2 * (-vmin) + 1, 2)


def round_values(
    y: NDArray[np.float64],
    rounding: Rounding | str,
    rng: np.random.Generator | None = None,
) -> NDArray[np.float64]:
    """Round real values to integers (still as float64) under ``rounding``."""
    rounding = coerce_enum(rounding, Rounding, "rounding")
    if rounding is Rounding.FLOOR:
        return np.floor(y)
    if rounding is Rounding.NEAREST:
        return np.floor(y + 0.5)
    generator = rng if rng is not None else np.random.default_rng()
    return np.floor(y + generator.random(np.shape(y)))


def _along_axis(param: ArrayLike, ndim: int, axis: int | None, name: str) -> NDArray[np.float64]:
    """Shape a per-channel parameter so it broadcasts along ``axis`` of an ``ndim`` array."""
    arr = np.asarray(param, dtype=np.float64)
    if axis is None:
        if arr.ndim != 0:
            raise ConfigError(f"{name} has shape {arr.shape}; per-channel values need axis=")
        return arr
    if arr.ndim != 1:
        raise ConfigError(f"per-channel {name} must be 1-D, got shape {arr.shape}")
    if not -ndim <= axis < ndim:
        raise ConfigError(f"axis {axis} is out of range for an array of {ndim} dimensions")
    shape = [1] * ndim
    shape[axis] = arr.shape[0]
    return arr.reshape(shape)


def _validate_scale(scale: NDArray[np.float64]) -> None:
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ConfigError("scale C must be finite and positive")


def quantize(
    x: ArrayLike,
    scale: ArrayLike,
    offset: ArrayLike = 0.0,
    modulus: int = 256,
    rounding: Rounding | str = Rounding.FLOOR,
    *,
    domain: Domain | str = Domain.UNSIGNED,
    axis: int | None = None,
    on_overflow: OnOverflow | str = OnOverflow.RAISE,
    rng: np.random.Generator | None = None,
) -> NDArray[np.int64]:
    """Compute Q(x) = round(C·x + d) mod p as int64 residues in ``[0, p)``.

    Args:
        x: Real values, any shape.
        scale: C > 0; a scalar, or a 1-D array with ``axis`` for per-channel scales.
        offset: d; a scalar, or a 1-D array with ``axis``.
        modulus: p, an int in ``[2, 2**53]``.
        rounding: FLOOR (the method's floor), NEAREST, or STOCHASTIC (uses ``rng``).
        domain: Which integers the residues stand for; see :class:`Domain`.
        axis: The channel axis of ``x`` for per-channel ``scale``/``offset``.
        on_overflow: RAISE (default), SATURATE to the window, or WRAP mod p.
        rng: Generator for stochastic rounding; a fresh one if omitted.

    Returns:
        int64 array of residues in ``[0, p)``, shaped like ``x``.

    Raises:
        ModulusOverflowError: some ``round(C·x + d)`` leaves the window and
            ``on_overflow`` is RAISE; the message gives the value range, the
            range of ``x`` that fits, and the modulus needed.
        ConfigError: invalid scale, modulus, axis or enum value, or non-finite ``x``.
    """
    p = _check_modulus(modulus, limit=MAX_FLOAT_MODULUS)
    domain = coerce_enum(domain, Domain, "domain")
    on_overflow = coerce_enum(on_overflow, OnOverflow, "on_overflow")
    rounding = coerce_enum(rounding, Rounding, "rounding")
    xs = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xs)):
        raise ConfigError("x contains NaN or infinity")
    c = _along_axis(scale, xs.ndim, axis, "scale")
    d = _along_axis(offset, xs.ndim, axis, "offset")
    _validate_scale(c)
    v = round_values(c * xs + d, rounding, rng)
    lo, hi = window(p, domain)
    outside = (v < lo) | (v > hi)
    if np.any(outside):
        if on_overflow is OnOverflow.RAISE:
            raise _overflow_error(xs, v, outside, c, d, p, domain, rounding)
        if on_overflow is OnOverflow.SATURATE:
            v = np.clip(v, lo, hi)
    return np.mod(v, p).astype(np.int64)


def _overflow_error(
    xs: NDArray[np.float64],
    v: NDArray[np.float64],
    outside: NDArray[np.bool_],
    c: NDArray[np.float64],
    d: NDArray[np.float64],
    p: int,
    domain: Domain,
    rounding: Rounding,
) -> ModulusOverflowError:
    lo, hi = window(p, domain)
    vmin, vmax = int(v.min()), int(v.max())
    needed = modulus_needed(vmin, vmax, domain)
    n_bad = int(np.count_nonzero(outside))
    msg = (
        f"round(C·x + d) takes values in [{vmin}, {vmax}], but modulus p={p} in the "
        f"{domain.value} domain represents only [{lo}, {hi}]: {n_bad} of {v.size} value(s) "
        "would wrap silently mod p."
    )
    if c.ndim == 0 and d.ndim == 0:
        slack = {Rounding.FLOOR: (0.0, 1.0), Rounding.NEAREST: (-0.5, 0.5)}.get(rounding)
        if slack is not None:
            x_lo = (lo + slack[0] - float(d)) / float(c)
            x_hi = (hi + slack[1] - float(d)) / float(c)
            msg += f" Only x in [{x_lo:.6g}, {x_hi:.6g}) fits; x here spans [{xs.min():.6g}, {xs.max():.6g}]."
    worst = np.unravel_index(int(np.argmax(np.where(outside, np.abs(v - (lo + hi) / 2), -1))), v.shape)
    wrapped = int(np.mod(v[worst], p))
    decoded = wrapped if domain is Domain.UNSIGNED else (wrapped - p if wrapped > p // 2 else wrapped)
    msg += (
        f" For example x = {xs[worst]:.6g} gives {int(v[worst])}, whose residue {wrapped} would "
        f"decode as {(decoded - float(np.broadcast_to(d, v.shape)[worst])) / float(np.broadcast_to(c, v.shape)[worst]):.6g}."
    )
    if needed is not None:
        msg += f" Use a modulus >= {needed},"
    else:
        msg += " No modulus holds negative values in the unsigned domain; use Domain.CENTERED,"
    msg += " lower the scale C, or pass on_overflow=OnOverflow.WRAP for the literal mod-p result."
    return ModulusOverflowError(
        msg, layer="input", bound=max(abs(vmin), abs(vmax)), modulus=p, modulus_needed=needed
    )


def centered_lift(q: ArrayLike, modulus: int) -> NDArray[Any]:
    """Map residues mod p to their representatives in ``(-p/2, p/2]``.

    Works for int64 arrays and for object arrays of Python ints (moduli past 2**63).
    Any integer input is reduced mod p first.

    Raises:
        ConfigError: the modulus is not an int >= 2.
    """
    p = _check_modulus(modulus)
    arr = np.asarray(q)
    if p > 2**62 or arr.dtype == object:
        arr = arr.astype(object)
    r = np.mod(arr, p)
    return np.where(r > p // 2, r - p, r)


def dequantize(
    q: ArrayLike,
    scale: ArrayLike,
    offset: ArrayLike = 0.0,
    modulus: int = 256,
    *,
    domain: Domain | str = Domain.UNSIGNED,
    axis: int | None = None,
) -> NDArray[np.float64]:
    """Invert :func:`quantize`: x̂ = (v - d) / C, where v is the residue's representative.

    Round-trip error is at most 1/(2C) with NEAREST rounding and below 1/C with FLOOR.

    Raises:
        ConfigError: invalid scale, modulus or axis.
    """
    p = _check_modulus(modulus)
    domain = coerce_enum(domain, Domain, "domain")
    arr = np.asarray(q)
    c = _along_axis(scale, arr.ndim, axis, "scale")
    d = _along_axis(offset, arr.ndim, axis, "offset")
    _validate_scale(c)
    v = centered_lift(arr, p) if domain is Domain.CENTERED else np.mod(arr, p)
    return (np.asarray(v, dtype=np.float64) - d) / c


# QuantParams lives in its own module; it is re-exported here for existing imports.
from secquant.quant.params import QuantParams  # noqa: E402  (re-export for existing imports)
