"""Shared pieces of the release policies: the enums, input checks and grid rounding.

See :mod:`secquant.dp.release` for the policies themselves.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = [
    "ReleaseForm",
    "ReleaseKind",
    "check_json",
    "float_scores",
    "int_field",
    "int_outputs",
    "round_to_grid",
    "whole_steps",
]


class ReleaseKind(enum.Enum):
    """Which policy; the ``kind`` of its JSON form."""

    FULL = "full"
    ROUNDED_LOGITS = "rounded_logits"
    DISCRETE_GAUSSIAN = "discrete_gaussian"
    ROUNDED_PROBABILITIES = "rounded_probabilities"
    TOP_LABEL = "top_label"


class ReleaseForm(enum.Enum):
    """What the client receives: scores in the input's units, probabilities, or class labels."""

    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LABELS = "labels"


def int_field(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ConfigError(f"{what} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


def float_scores(values: Any) -> NDArray[np.float64]:
    z = np.asarray(values, dtype=np.float64)
    if z.ndim < 1 or not np.all(np.isfinite(z)):
        raise ConfigError(f"scores must be a finite array with a class axis, got shape {z.shape}")
    return z


def int_outputs(values: Any) -> NDArray[np.int64]:
    y = np.asarray(values)
    if y.dtype == object:
        ints = [int(v) for v in y.reshape(-1)]
        if any(not -(2**62) <= v < 2**62 for v in ints):
            raise ConfigError("integer outputs beyond ±2**62 cannot be released; use a smaller modulus")
        return np.asarray(ints, dtype=np.int64).reshape(y.shape)
    if y.dtype.kind not in "iu" or y.ndim < 1:
        raise ConfigError(f"apply() takes the integer outputs of forward_int, got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def round_to_grid(y: NDArray[np.int64], shift: int) -> NDArray[np.int64]:
    """``y`` rounded (half up) to a multiple of ``2**shift``, in units of ``2**shift``."""
    return y if shift == 0 else (y + (1 << (shift - 1))) >> shift


def whole_steps(policy: Any) -> int:
    """Grid exponent in steps for :meth:`apply`; refuses fractional steps."""
    r = int(policy.resolution_bits)
    if r > 0:
        raise ConfigError(
            f"{policy.label} has a grid of 2**-{r} units, finer than one integer step; express it in steps "
            f"first with policy.scaled(bits), bits ~ log2(output_scale) (the extraction audit does this)"
        )
    return -r


def check_json(data: Any, kind: ReleaseKind, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("kind") != kind.value:
        raise ConfigError(f"expected a release policy of kind {kind.value!r}, got {data!r}")
    extra = set(data) - {"kind", *fields}
    if extra:
        raise ConfigError(f"release policy {kind.value!r} has unknown fields {sorted(extra)}")
    return {k: data[k] for k in fields if k in data}
