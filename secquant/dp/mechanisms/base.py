"""Shared pieces of the built-in mechanisms: the privacy claim and argument checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from secquant.dp.accounting import check_delta
from secquant.errors import ConfigError

__all__ = ["AccountedMechanism", "PrivacyClaim"]


@dataclass(frozen=True)
class PrivacyClaim:
    """An (ε, δ)-DP claim and where it comes from.

    Attributes:
        epsilon: ε in nats, finite and >= 0.
        delta: δ in [0, 1).
        source: Who certifies it (``"dp-accounting: ..."`` or a paper and theorem).
    """

    epsilon: float
    delta: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        eps = float(self.epsilon)
        if not math.isfinite(eps) or eps < 0:
            raise ConfigError(f"claimed epsilon must be finite and >= 0, got {self.epsilon}")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", check_delta(self.delta))


class AccountedMechanism(Protocol):
    """A built-in mechanism: callable ``(x, rng, n)`` plus its accounting."""

    @property
    def name(self) -> str:
        """Short name shown in audit results."""
        ...

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[Any]:
        """Draw ``n`` outputs on input ``x`` (axis 0 indexes draws)."""
        ...

    def accountant_epsilon(self, delta: float) -> float | None:
        """ε at δ from dp-accounting for the declared noise, or None when it has no model for it."""
        ...


def positive(value: float, what: str) -> float:
    """Return ``value`` as a float after checking it is finite and > 0.

    Raises:
        ConfigError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{what} must be finite and > 0, got {value}")
    return v


def positive_int(value: int, what: str) -> int:
    """Return ``value`` as an int after checking it is an integer >= 1.

    Raises:
        ConfigError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ConfigError(f"{what} must be an int >= 1, got {value!r}")
    return int(value)


def draws(n: int) -> int:
    """Validate the number of draws requested from a mechanism.

    Raises:
        ConfigError: ``n`` is not a non-negative int.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 0:
        raise ConfigError(f"n must be a non-negative int, got {n!r}")
    return int(n)


def real_input(x: Any) -> NDArray[np.float64]:
    """``x`` as a float64 array (scalar or vector).

    Raises:
        ConfigError: ``x`` is not finite and numeric.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"input must be numeric, got {x!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise ConfigError("input contains NaN or infinity")
    return arr


def integer_input(x: Any) -> NDArray[np.int64]:
    """``x`` as an int64 array.

    Raises:
        ConfigError: ``x`` holds non-integers.
    """
    arr = real_input(x)
    if np.any(arr != np.round(arr)):
        raise ConfigError(f"input must be integers, got {x!r}")
    return arr.astype(np.int64)
