"""Frozen parameters of Q(x) = round(C·x + d) mod p: :class:`QuantParams`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import (
    Domain,
    OnOverflow,
    Rounding,
    _check_modulus,
    _validate_scale,
    centered_lift,
    coerce_enum,
    dequantize,
    quantize,
    window,
)

__all__ = ["QuantParams"]


def _as_tuple_or_float(value: ArrayLike) -> float | tuple[float, ...]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    if arr.ndim != 1:
        raise ConfigError(f"per-channel parameters must be 1-D, got shape {arr.shape}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class QuantParams:
    """Frozen parameters of Q(x) = round(C·x + d) mod p.

    Attributes:
        scale: C > 0, a float or a tuple of per-channel floats (with ``axis``).
        offset: d, a float or a tuple of per-channel floats.
        modulus: p >= 2.
        rounding: How ``C·x + d`` is rounded.
        domain: Which integers the residues stand for.
        axis: Channel axis for per-channel parameters, else ``None``.
        on_overflow: What :meth:`quantize` does outside the window.
    """

    scale: float | tuple[float, ...]
    offset: float | tuple[float, ...] = 0.0
    modulus: int = 256
    rounding: Rounding = Rounding.NEAREST
    domain: Domain = Domain.CENTERED
    axis: int | None = None
    on_overflow: OnOverflow = field(default=OnOverflow.RAISE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _as_tuple_or_float(self.scale))
        object.__setattr__(self, "offset", _as_tuple_or_float(self.offset))
        object.__setattr__(self, "modulus", _check_modulus(self.modulus))
        object.__setattr__(self, "rounding", coerce_enum(self.rounding, Rounding, "rounding"))
        object.__setattr__(self, "domain", coerce_enum(self.domain, Domain, "domain"))
        object.__setattr__(self, "on_overflow", coerce_enum(self.on_overflow, OnOverflow, "on_overflow"))
        per_channel = isinstance(self.scale, tuple) or isinstance(self.offset, tuple)
        if per_channel and self.axis is None:
            raise ConfigError("per-channel scale or offset needs an axis")
        if isinstance(self.scale, tuple) and isinstance(self.offset, tuple) and len(self.scale) != len(self.offset):
            raise ConfigError("per-channel scale and offset differ in length")
        _validate_scale(np.asarray(self.scale, dtype=np.float64))
        if not all(math.isfinite(v) for v in np.atleast_1d(np.asarray(self.offset, dtype=float))):
            raise ConfigError("offset d must be finite")

    def _scale_offset(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        c = np.asarray(self.scale, dtype=np.float64)
        d = np.asarray(self.offset, dtype=np.float64)
        if self.axis is not None:
            n = max(c.size, d.size)
            c, d = np.broadcast_to(c, (n,)), np.broadcast_to(d, (n,))
        return c, d

    @property
    def window(self) -> tuple[int, int]:
        """The inclusive integer window the residues stand for."""
        return window(self.modulus, self.domain)

    def quantize(
        self,
        x: ArrayLike,
        *,
        rng: np.random.Generator | None = None,
        on_overflow: OnOverflow | str | None = None,
    ) -> NDArray[np.int64]:
        """Apply :func:`quantize` with these parameters; see there for errors."""
        c, d = self._scale_offset()
        return quantize(
            x, c, d, self.modulus, self.rounding, domain=self.domain, axis=self.axis,
            on_overflow=self.on_overflow if on_overflow is None else on_overflow, rng=rng,
        )

    def integers(self, x: ArrayLike, *, rng: np.random.Generator | None = None) -> NDArray[np.int64]:
        """Quantize and return the window representatives (signed for CENTERED) instead of residues."""
        q = self.quantize(x, rng=rng)
        if self.domain is Domain.CENTERED:
            return centered_lift(q, self.modulus).astype(np.int64)
        return q

    def dequantize(self, q: ArrayLike) -> NDArray[np.float64]:
        """Apply :func:`dequantize` with these parameters."""
        c, d = self._scale_offset()
        return dequantize(q, c, d, self.modulus, domain=self.domain, axis=self.axis)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :meth:`from_dict` inverts it."""
        return {
            "scale": list(self.scale) if isinstance(self.scale, tuple) else self.scale,
            "offset": list(self.offset) if isinstance(self.offset, tuple) else self.offset,
            "modulus": self.modulus,
            "rounding": self.rounding.value,
            "domain": self.domain.value,
            "axis": self.axis,
            "on_overflow": self.on_overflow.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantParams:
        """Rebuild parameters written by :meth:`to_dict`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            return cls(**{k: data[k] for k in ("scale", "offset", "modulus", "rounding", "domain", "axis", "on_overflow")})
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a QuantParams description: {exc}") from exc
