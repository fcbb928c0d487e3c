"""What is attacked: the float model, its integer versions, and DP-SGD models.

A :class:`Target` names a model family and an optional bit-width; the standard
family is trained without privacy, the DP-SGD family with opacus.  Integer
targets are :func:`secquant.quantize_model` of the trained float model,
calibrated on its own training set, and scored with
:meth:`QuantizedModel.predict` (quantize, exact ``forward_int``, dequantize).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Family", "Target", "parse_target", "score_target"]

#: Bit-widths ``quantize_model`` is audited at by default.
DEFAULT_BITS = (8, 6, 4, 2)


class Family(enum.Enum):
    """How the underlying float models are trained."""

    STANDARD = "standard"
    DPSGD = "dpsgd"


@dataclass(frozen=True)
class Target:
    """One audited model: a training family, quantized at ``bits`` or left in float.

    Attributes:
        family: STANDARD or DPSGD (lower-case strings accepted).
        bits: Weight bits for ``quantize_model`` in [2, 16], or None for the float model.

    Raises:
        ConfigError: unknown family or bits out of range.
    """

    family: Family = Family.STANDARD
    bits: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", coerce_enum(self.family, Family, "family"))
        if self.bits is not None:
            if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or not 2 <= int(self.bits) <= 16:
                raise ConfigError(f"target bits must be an int in [2, 16] or None (float), got {self.bits!r}")
            object.__setattr__(self, "bits", int(self.bits))

    @property
    def label(self) -> str:
        """Table name: ``float``, ``int8``, ``dpsgd``, ``dpsgd-int8``."""
        base = "float" if self.family is Family.STANDARD else "dpsgd"
        if self.bits is None:
            return base
        return f"int{self.bits}" if self.family is Family.STANDARD else f"dpsgd-int{self.bits}"


def parse_target(text: str) -> Target:
    """Read a target from its table name (see :attr:`Target.label`).

    Raises:
        ConfigError: the text names no target.
    """
    t = str(text).strip().lower()
    family = Family.DPSGD if t.startswith("dpsgd") else Family.STANDARD
    rest = t.removeprefix("dpsgd").lstrip("-")
    if rest in ("", "float") and (family is Family.DPSGD or t == "float"):
        return Target(family)
    if rest.startswith("int") and rest[3:].isdigit():
        return Target(family, int(rest[3:]))
    raise ConfigError(f"unknown target {text!r}; use float, int<bits> (e.g. int4), dpsgd or dpsgd-int<bits>")


def score_target(model: nn.Module, target: Target, calibration: NDArray[np.float32], x: NDArray[np.float32]) -> NDArray[np.float64]:
    """Float scores (logits) of ``target`` on ``x``.

    Args:
        model: The trained float model of the target's family.
        target: Which version to score.
        calibration: The model's training inputs; they calibrate ``quantize_model``.
        x: Inputs of shape ``(n, features)``.

    Returns:
        Logits of shape ``(n, classes)``.

    Raises:
        SecquantError: whatever ``quantize_model`` raises for this bit-width
            (the caller records it rather than hiding it).
    """
    import torch

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if not x.flags.writeable:  # joblib hands large arrays over as read-only memmaps
        x = x.copy()
    if target.bits is None:
        with torch.no_grad():
            return model(torch.from_numpy(x)).double().numpy()
    from secquant.quant.convert import quantize_model

    q = quantize_model(model, np.asarray(calibration, dtype=np.float32).reshape(len(calibration), -1), bits=target.bits)
    return np.asarray(q.predict(x), dtype=np.float64)
