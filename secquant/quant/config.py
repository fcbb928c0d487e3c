"""How :func:`~secquant.quantize_model` quantizes a network: one frozen configuration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from secquant.errors import ConfigError
from secquant.quant.calibration import (
    Granularity,
    MinMax,
    MSEOptimal,
    Percentile,
    PerChannel,
    PerTensor,
    RangeMethod,
    Symmetry,
    check_bits,
)
from secquant.quant.primitives import OnOverflow, Rounding, coerce_enum
from secquant.quant.requantize_config import RequantizeConfig

__all__ = ["QuantConfig"]


@dataclass(frozen=True)
class QuantConfig:
    """Quantization choices for a whole model.

    Attributes:
        bits: Bits of weights and polynomial coefficients (symmetric, so values
            lie in ±(2**(bits-1) - 1)).
        input_bits: Bits of the input; ``bits`` when None.
        weight_granularity: One scale per output channel (default) or per tensor.
        weight_method: Range estimator for weights (MinMax, Percentile, MSEOptimal).
        input_method: Range estimator for the calibration inputs.
        input_symmetry: ASYMMETRIC (default) uses every level over [lo, hi].
        input_range: Known input range (lo, hi), e.g. (0, 1) for pixels;
            overrides ``input_method``.
        input_rounding: Rounding of the input: NEAREST (default) or the
            method's FLOOR, or STOCHASTIC.
        input_overflow: Inputs outside the calibrated range SATURATE (default)
            or RAISE; they never wrap.
        layer_bits: Per-layer overrides of ``bits``, keyed by layer name.
        requantize: Scale integers back between layers (:class:`RequantizeConfig`);
            None (default) keeps every integer exact, with bits growing with depth.
    """

    bits: int = 8
    input_bits: int | None = None
    weight_granularity: Granularity = field(default_factory=PerChannel)
    weight_method: RangeMethod = field(default_factory=MinMax)
    input_method: RangeMethod = field(default_factory=MinMax)
    input_symmetry: Symmetry = Symmetry.ASYMMETRIC
    input_range: tuple[float, float] | None = None
    input_rounding: Rounding = Rounding.NEAREST
    input_overflow: OnOverflow = OnOverflow.SATURATE
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    requantize: RequantizeConfig | None = None

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.input_bits is not None:
            check_bits(self.input_bits, "input_bits")
        if not isinstance(self.weight_granularity, (PerTensor, PerChannel)):
            raise ConfigError("weight_granularity must be PerTensor() or PerChannel()")
        for what in ("weight_method", "input_method"):
            if not isinstance(getattr(self, what), (MinMax, Percentile, MSEOptimal)):
                raise ConfigError(f"{what} must be MinMax(), Percentile(p) or MSEOptimal()")
        object.__setattr__(self, "input_symmetry", coerce_enum(self.input_symmetry, Symmetry, "input_symmetry"))
        object.__setattr__(self, "input_rounding", coerce_enum(self.input_rounding, Rounding, "input_rounding"))
        object.__setattr__(self, "input_overflow", coerce_enum(self.input_overflow, OnOverflow, "input_overflow"))
        if self.input_overflow is OnOverflow.WRAP:
            raise ConfigError("input_overflow=WRAP would break the bound analysis; use SATURATE or RAISE")
        if self.input_range is not None:
            lo, hi = (float(v) for v in self.input_range)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ConfigError(f"input_range must be finite with lo < hi, got {self.input_range}")
            object.__setattr__(self, "input_range", (lo, hi))
        layer_bits = dict(self.layer_bits)
        for name, b in layer_bits.items():
            check_bits(b, f"layer_bits[{name!r}]")
        object.__setattr__(self, "layer_bits", layer_bits)
        if self.requantize is not None and not isinstance(self.requantize, RequantizeConfig):
            raise ConfigError(f"requantize must be a RequantizeConfig or None, got {type(self.requantize).__name__}")

    def __hash__(self) -> int:
        return hash((self.bits, self.input_bits, self.weight_granularity, self.weight_method,
                     self.input_method, self.input_symmetry, self.input_range, self.input_rounding,
                     self.input_overflow, tuple(sorted(self.layer_bits.items())), self.requantize))

    @property
    def effective_input_bits(self) -> int:
        """Bits of the input quantization."""
        return self.bits if self.input_bits is None else self.input_bits

    def bits_for(self, layer: str) -> int:
        """Bits of one layer's weights."""
        return int(self.layer_bits.get(layer, self.bits))

    def with_(self, **changes: Any) -> QuantConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for artifacts and reports)."""
        return {
            "bits": self.bits,
            "input_bits": self.effective_input_bits,
            "weight_granularity": type(self.weight_granularity).__name__,
            "weight_method": repr(self.weight_method),
            "input_method": repr(self.input_method),
            "input_symmetry": self.input_symmetry.value,
            "input_range": list(self.input_range) if self.input_range else None,
            "input_rounding": self.input_rounding.value,
            "input_overflow": self.input_overflow.value,
            "layer_bits": dict(self.layer_bits),
            **({"requantize": self.requantize.to_dict()} if self.requantize is not None else {}),
        }
