"""The requantization choice: :class:`RequantizeConfig` (where, and to how many bits).

See :mod:`secquant.quant.requantize` for the op and how its multiplier is chosen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from secquant.errors import ConfigError
from secquant.quant.calibration import (
    MinMax,
    MSEOptimal,
    Percentile,
    RangeMethod,
    check_bits,
    qmax,
)
from secquant.quant.primitives import coerce_enum

__all__ = ["RangeSource", "RequantizeAt", "RequantizeConfig"]


class RequantizeAt(enum.Enum):
    """Where :func:`~secquant.quantize_model` inserts requantize ops."""

    AFTER_ACTIVATION = "after_activation"  #: on the output of every Square and Poly
    BEFORE_ACTIVATION = "before_activation"  #: on the input of every Square and Poly (after each affine layer)
    BUDGET = "budget"  #: on the inputs of any layer whose output would pass ``budget_bits``


class RangeSource(enum.Enum):
    """Which range of x a requantize op maps onto ±T."""

    CALIBRATION = "calibration"  #: the largest |x| on calibration data (times headroom); the op clips beyond it
    PROVEN = "proven"  #: the proven worst-case |x|; the clip never binds, but precision shrinks with depth


@dataclass(frozen=True)
class RequantizeConfig:
    """How and where integers are scaled back between layers.

    Attributes:
        target_bits: Requantized integers lie in ±(2**(target_bits-1) - 1); in [2, 32].
        at: Where to requantize (:class:`RequantizeAt`, or its lower-case value).
        budget_bits: With ``at=BUDGET``: the largest bits any layer's output may
            need (``LayerBound.bits``); required there, refused elsewhere.
        multiplier_bits: Bits of the fixed-point multiplier M, in [2, 31].
        range_from: Map the calibration range (default: precise, clips outliers)
            or the proven range (never clips, which an approximate scheme can
            follow exactly, but loses bits to the pessimism of worst-case bounds).
        method: With ``CALIBRATION``: how the range is estimated from the
            calibration values, per channel (MinMax, Percentile(p), MSEOptimal()).
            Squares make heavy tails; a percentile keeps the typical values precise
            and clips the rare large ones.
        headroom: With ``CALIBRATION``: the estimated range is multiplied by this
            factor >= 1 before it is mapped onto T (room for inputs beyond the
            calibration data before the clip binds).

    Raises:
        ConfigError: a value out of range, or ``budget_bits`` given without
            ``at=BUDGET`` (or missing with it, or not above ``target_bits``).
    """

    target_bits: int = 10
    at: RequantizeAt = RequantizeAt.BEFORE_ACTIVATION
    budget_bits: int | None = None
    multiplier_bits: int = 16
    range_from: RangeSource = RangeSource.CALIBRATION
    method: RangeMethod = field(default_factory=MinMax)
    headroom: float = 1.0

    def __post_init__(self) -> None:
        check_bits(self.target_bits, "target_bits")
        object.__setattr__(self, "at", coerce_enum(self.at, RequantizeAt, "at"))
        if isinstance(self.multiplier_bits, bool) or not isinstance(self.multiplier_bits, int) or not 2 <= self.multiplier_bits <= 31:
            raise ConfigError(f"multiplier_bits must be an int in [2, 31], got {self.multiplier_bits!r}")
        object.__setattr__(self, "range_from", coerce_enum(self.range_from, RangeSource, "range_from"))
        if isinstance(self.headroom, bool) or not isinstance(self.headroom, (int, float)) or not 1.0 <= self.headroom < 2**20:
            raise ConfigError(f"headroom must be a number in [1, 2**20), got {self.headroom!r}")
        object.__setattr__(self, "headroom", float(self.headroom))
        if not isinstance(self.method, (MinMax, Percentile, MSEOptimal)):
            raise ConfigError(f"method must be MinMax(), Percentile(p) or MSEOptimal(), got {self.method!r}")
        if self.at is RequantizeAt.BUDGET:
            if isinstance(self.budget_bits, bool) or not isinstance(self.budget_bits, int) or self.budget_bits <= self.target_bits:
                raise ConfigError(f"at=BUDGET needs budget_bits, an int above target_bits={self.target_bits}, "
                                  f"got {self.budget_bits!r}")
        elif self.budget_bits is not None:
            raise ConfigError("budget_bits applies only with at=RequantizeAt.BUDGET")

    @property
    def limit(self) -> int:
        """T = 2**(target_bits-1) - 1, the bound of every requantized integer."""
        return qmax(self.target_bits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` inverts it."""
        return {"target_bits": self.target_bits, "at": self.at.value, "budget_bits": self.budget_bits,
                "multiplier_bits": self.multiplier_bits, "range_from": self.range_from.value, "method": repr(self.method), "headroom": self.headroom}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequantizeConfig:
        """Rebuild from :meth:`to_dict`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            return cls(target_bits=data["target_bits"], at=data["at"], budget_bits=data.get("budget_bits"),
                       multiplier_bits=data.get("multiplier_bits", 16), range_from=data.get("range_from", "calibration"),
                       headroom=data.get("headroom", 1.0))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a RequantizeConfig description: {exc}") from exc
