"""Additive-noise mechanisms, randomized response and stochastic rounding.

Each mechanism is a frozen dataclass, callable as ``mechanism(x, rng, n)`` and
returning ``n`` draws along axis 0 (shape ``(n,)`` for scalar ``x``,
``(n, *x.shape)`` otherwise).  ``accountant_epsilon(δ)`` is dp-accounting's ε
for the noise the mechanism *declares*; for the deliberately broken variants
that is what a buggy implementation would report, and the audit shows the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.dp.accounting import discrete_gaussian_epsilon, epsilon_for_event
from secquant.dp.mechanisms.base import draws, integer_input, positive, positive_int, real_input
from secquant.dp.samplers import sample_discrete_gaussian, sample_discrete_laplace
from secquant.errors import ConfigError
from secquant.quant.primitives import Rounding, round_values

__all__ = [
    "DiscreteGaussianMechanism",
    "DiscreteLaplaceMechanism",
    "FixedPointLaplace",
    "GaussianMechanism",
    "LaplaceMechanism",
    "RandomizedResponse",
    "RepeatedLaplace",
    "StochasticRounding",
]


def _noisy(x: NDArray[Any], noise: NDArray[Any]) -> NDArray[Any]:
    out = x[None, ...] + noise
    return out


@dataclass(frozen=True)
class LaplaceMechanism:
    """``x + Lap(b)`` coordinate-wise; ε = Δ₁/b (dp-accounting ``LaplaceDpEvent(b/Δ₁)``).

    Attributes:
        scale: b > 0, in the units of ``x``.
        sensitivity: Δ₁ > 0, the largest L1 distance between neighbouring inputs.
    """

    scale: float = 1.0
    sensitivity: float = 1.0
    name: str = "laplace"

    def __post_init__(self) -> None:
        positive(self.scale, "scale")
        positive(self.sensitivity, "sensitivity")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        xs = real_input(x)
        return _noisy(xs, rng.laplace(0.0, self.scale, (draws(n), *xs.shape)))

    def dp_event(self) -> Any:
        """The dp-accounting event."""
        import dp_accounting as dpa

        return dpa.LaplaceDpEvent(self.scale / self.sensitivity)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class GaussianMechanism:
    """``x + N(0, σ²)`` coordinate-wise; (ε, δ) from dp-accounting ``GaussianDpEvent(σ/Δ₂)``.

    Attributes:
        sigma: σ > 0, standard deviation in the units of ``x``.
        sensitivity: Δ₂ > 0, the largest L2 distance between neighbouring inputs.
    """

    sigma: float = 1.0
    sensitivity: float = 1.0
    name: str = "gaussian"

    def __post_init__(self) -> None:
        positive(self.sigma, "sigma")
        positive(self.sensitivity, "sensitivity")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        xs = real_input(x)
        return _noisy(xs, rng.normal(0.0, self.sigma, (draws(n), *xs.shape)))

    def dp_event(self) -> Any:
        """The dp-accounting event."""
        import dp_accounting as dpa

        return dpa.GaussianDpEvent(self.sigma / self.sensitivity)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting (``inf`` at δ = 0)."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class DiscreteLaplaceMechanism:
    """``x + DLap(a)`` on integers, ``P[Z = z] ∝ exp(-a|z|)``; ε = a·Δ (``DiscreteLaplaceDpEvent``).

    Noise from the exact sampler :func:`secquant.dp.samplers.sample_discrete_laplace`.

    Attributes:
        parameter: a > 0 (1/scale, per integer step).
        sensitivity: Δ >= 1, integer L1 sensitivity.
        modulus: If set, outputs are reduced mod this (values in ``[0, modulus)``).
    """

    parameter: float = 1.0
    sensitivity: int = 1
    modulus: int | None = None
    name: str = "discrete_laplace"

    def __post_init__(self) -> None:
        positive(self.parameter, "parameter")
        positive_int(self.sensitivity, "sensitivity")
        if self.modulus is not None:
            positive_int(self.modulus, "modulus")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        xs = integer_input(x)
        noise = sample_discrete_laplace(self.parameter, draws(n) * xs.size, rng).reshape(n, *xs.shape)
        out = _noisy(xs, noise)
        return out if self.modulus is None else np.mod(out, self.modulus)

    def dp_event(self) -> Any:
        """The dp-accounting event (with the rational parameter the sampler uses)."""
        import dp_accounting as dpa

        a = float(Fraction(self.parameter).limit_denominator(10**6))
        return dpa.dp_event.DiscreteLaplaceDpEvent(a, self.sensitivity)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class DiscreteGaussianMechanism:
    """``(x + N_Z(0, σ²)) mod p`` on integers, with the exact CKS sampler.

    dp-accounting has no ``DpEvent`` for the discrete Gaussian; the accountant ε
    comes from its ``DiscreteGaussianPrivacyLoss`` (exact hockey-stick
    divergence of N_Z(0, σ²) against its shift by Δ).  Reducing mod p is
    post-processing and cannot increase ε.

    Attributes:
        sigma: σ > 0 of the discrete Gaussian, in integer steps.
        sensitivity: Δ >= 1, integer sensitivity (scalar input) / per-coordinate shift.
        modulus: p >= 2 or None; e.g. ``2**16`` for 16-bit secure aggregation.
    """

    sigma: float = 1.0
    sensitivity: int = 1
    modulus: int | None = 2**16
    name: str = "discrete_gaussian"

    def __post_init__(self) -> None:
        positive(self.sigma, "sigma")
        positive_int(self.sensitivity, "sensitivity")
        if self.modulus is not None and positive_int(self.modulus, "modulus") < 2:
            raise ConfigError("modulus must be at least 2")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        xs = integer_input(x)
        noise = sample_discrete_gaussian(self.sigma, draws(n) * xs.size, rng).reshape(n, *xs.shape)
        out = _noisy(xs, noise)
        return out if self.modulus is None else np.mod(out, self.modulus)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting's ``DiscreteGaussianPrivacyLoss`` (scalar queries)."""
        return discrete_gaussian_epsilon(self.sigma, self.sensitivity, delta)


@dataclass(frozen=True)
class RandomizedResponse:
    """k-ary randomized response (dp-accounting ``RandomizedResponseDpEvent``).

    With probability ``1 - p`` the true bucket ``x`` in ``{0, ..., k-1}`` is
    reported, otherwise a uniformly random bucket.  Neighbours: any two buckets.

    Attributes:
        num_buckets: k >= 2.
        noise_parameter: p in (0, 1].
    """

    num_buckets: int = 2
    noise_parameter: float = 0.5
    name: str = "randomized_response"

    def __post_init__(self) -> None:
        if positive_int(self.num_buckets, "num_buckets") < 2:
            raise ConfigError("num_buckets must be at least 2")
        if not 0.0 < float(self.noise_parameter) <= 1.0:
            raise ConfigError(f"noise_parameter must lie in (0, 1], got {self.noise_parameter}")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        bucket = int(integer_input(x))
        if not 0 <= bucket < self.num_buckets:
            raise ConfigError(f"input bucket must lie in [0, {self.num_buckets}), got {bucket}")
        n = draws(n)
        random = rng.random(n) < self.noise_parameter
        return np.where(random, rng.integers(0, self.num_buckets, n), bucket)

    def dp_event(self) -> Any:
        """The dp-accounting event."""
        import dp_accounting as dpa

        return dpa.RandomizedResponseDpEvent(float(self.noise_parameter), self.num_buckets)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting's PLD accountant (``REPLACE_ONE``)."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class StochasticRounding:
    """Stochastic-rounding quantization ``floor(C·x + U)`` viewed as a mechanism.

    On its own, stochastic rounding is *not* DP over an unbounded domain (inputs
    on the grid round deterministically).  Restricted to the domain
    ``x ∈ [(k + m)/C, (k + 1 - m)/C]`` (one quantization cell, margin m), the
    output is ``k + Bernoulli(C·x - k)``; the two extreme inputs give exactly
    binary randomized response with noise parameter ``2m`` and every other
    input is a mixture of those, so the claim is dp-accounting's
    ``RandomizedResponseDpEvent(2m, 2)``, i.e. ε = ln((1 - m)/m).
    Rounding uses :func:`secquant.quant.primitives.round_values`.

    Attributes:
        scale: C > 0, the quantization scale (outputs are integers).
        margin: m in (0, 1/2), distance of the domain from the cell edges, in grid steps.
        cell: k, the integer cell the domain lies in.
    """

    scale: float = 16.0
    margin: float = 0.25
    cell: int = 0
    name: str = "stochastic_rounding"

    def __post_init__(self) -> None:
        positive(self.scale, "scale")
        if not 0.0 < float(self.margin) < 0.5:
            raise ConfigError(f"margin must lie in (0, 0.5), got {self.margin}")

    @property
    def domain(self) -> tuple[float, float]:
        """Inclusive input range the claim covers, in the units of ``x``."""
        return (self.cell + self.margin) / self.scale, (self.cell + 1 - self.margin) / self.scale

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        xs = real_input(x)
        lo, hi = self.domain
        if np.any(xs < lo - 1e-12) or np.any(xs > hi + 1e-12):
            raise ConfigError(f"input must lie in [{lo:.6g}, {hi:.6g}] for the privacy claim to hold")
        y = np.broadcast_to(self.scale * xs, (draws(n), *xs.shape))
        return round_values(y, Rounding.STOCHASTIC, rng).astype(np.int64)

    def dp_event(self) -> Any:
        """The dp-accounting event (binary randomized response)."""
        import dp_accounting as dpa

        return dpa.RandomizedResponseDpEvent(2.0 * float(self.margin), 2)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ from dp-accounting."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class FixedPointLaplace:
    """Fixed-point release: ``round(C·x) + DLap(a)`` as integers, calibrated for ε.

    The integer sensitivity after nearest rounding is ``Δ_int = floor(C·Δ) + 1``
    and the declared noise is ``DiscreteLaplaceDpEvent(ε/Δ_int, Δ_int)``.  With
    ``scale_noise=False`` (the bug) the parameter is computed from the real-unit
    sensitivity, ``a = ε/Δ``, i.e. the noise is not multiplied by the encoding
    scale C; the declared claim stays ε, the truth is about ``ε·Δ_int/Δ``.

    Attributes:
        encoding_scale: C > 0 (e.g. 16 for 4 fractional bits).
        epsilon: Target ε in nats.
        sensitivity: Δ > 0 in real units.
        scale_noise: False reproduces the bug.
    """

    encoding_scale: float = 16.0
    epsilon: float = 1.0
    sensitivity: float = 1.0
    scale_noise: bool = True
    name: str = "fixed_point_laplace"

    def __post_init__(self) -> None:
        positive(self.encoding_scale, "encoding_scale")
        positive(self.epsilon, "epsilon")
        positive(self.sensitivity, "sensitivity")

    @property
    def integer_sensitivity(self) -> int:
        """Δ_int = floor(C·Δ) + 1, the sensitivity of ``round(C·x)``."""
        return math.floor(self.encoding_scale * self.sensitivity) + 1

    @property
    def noise_parameter(self) -> float:
        """The discrete Laplace parameter actually used."""
        if self.scale_noise:
            return self.epsilon / self.integer_sensitivity
        return self.epsilon / self.sensitivity  # BUG: forgot the encoding scale

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        xs = real_input(x)
        v = round_values(self.encoding_scale * xs, Rounding.NEAREST).astype(np.int64)
        noise = sample_discrete_laplace(self.noise_parameter, draws(n) * xs.size, rng).reshape(n, *xs.shape)
        return _noisy(v, noise)

    def dp_event(self) -> Any:
        """The event the implementation declares (the intended, correctly scaled noise)."""
        import dp_accounting as dpa

        a = float(Fraction(self.epsilon / self.integer_sensitivity).limit_denominator(10**6))
        return dpa.dp_event.DiscreteLaplaceDpEvent(a, self.integer_sensitivity)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ that dp-accounting gives for the declared event."""
        return epsilon_for_event(self.dp_event(), delta)


@dataclass(frozen=True)
class RepeatedLaplace:
    """Two releases ``(x[0] + Z1, x[1] + Z2)`` with Laplace noise of scale b each.

    Declared: two Laplace releases, ``ComposedDpEvent([LaplaceDpEvent(b/Δ)] * 2)``,
    ε = 2Δ/b.  With ``reuse_noise=True`` (the bug) ``Z2 = Z1``, so
    ``y1 - y2 = x[0] - x[1]`` is released exactly and no finite ε holds for
    neighbours that change ``x[0] - x[1]``.

    Attributes:
        scale: b > 0.
        sensitivity: Δ > 0, the largest change of each coordinate between neighbours.
        reuse_noise: True reproduces the bug.
    """

    scale: float = 2.0
    sensitivity: float = 1.0
    reuse_noise: bool = False
    name: str = "repeated_laplace"

    def __post_init__(self) -> None:
        positive(self.scale, "scale")
        positive(self.sensitivity, "sensitivity")

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        xs = real_input(x)
        if xs.shape != (2,):
            raise ConfigError(f"input must be a pair of query answers, shape (2,), got {xs.shape}")
        n = draws(n)
        z = rng.laplace(0.0, self.scale, (n, 1 if self.reuse_noise else 2))
        return xs[None, :] + np.broadcast_to(z, (n, 2))

    def dp_event(self) -> Any:
        """The declared event (two independent Laplace releases)."""
        import dp_accounting as dpa

        return dpa.ComposedDpEvent([dpa.LaplaceDpEvent(self.scale / self.sensitivity)] * 2)

    def accountant_epsilon(self, delta: float) -> float:
        """ε at δ that dp-accounting gives for the declared event."""
        return epsilon_for_event(self.dp_event(), delta)
