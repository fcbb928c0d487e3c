"""The distributed discrete Gaussian for sums mod 2^b (Kairouz, Liu and Steinke, ICML 2021).

Each of n clients adds independent discrete Gaussian noise N_Z(0, σ²) to its
integer vector and sends it mod 2^b; secure aggregation reveals only the sum
mod 2^b, which carries the sum of the surviving clients' noise.  That sum is not
itself a discrete Gaussian, so dp-accounting has no event for it.  The claim is:

* Kairouz–Liu–Steinke 2021, Proposition 14 (arXiv:2102.06387): for m surviving
  clients, σ >= 1/2, L1/L2 sensitivities Δ₁, Δ₂ and dimension d, with
  ``τ = 10 Σ_{k=1}^{m-1} exp(-2π²σ² k/(k+1))``, the Rényi divergence of order α is at most
  ``min(α Δ₂²/(2mσ²) + τd,  α/2 (Δ₂²/(mσ²) + 2Δ₁τ/(√m σ) + τ²d),  α/2 (Δ₂/(√m σ) + τ√d)²)``;
* each of the three terms is a zero-concentrated DP statement
  ``ZCDpEvent(rho, xi)`` (RDP ``xi + rho·α``), converted to (ε, δ) by
  dp-accounting's RDP accountant; the smallest ε is reported.

Dropouts: pass ``surviving`` (fewer clients, less noise, larger ε).  The
noise itself is public API for secure aggregation (issue 6): :meth:`client_share`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.dp.accounting import epsilon_for_event
from secquant.dp.mechanisms.base import draws, integer_input, positive, positive_int
from secquant.dp.samplers import sample_discrete_gaussian
from secquant.errors import ConfigError

__all__ = ["DistributedDiscreteGaussian", "DistributedSum"]


@dataclass(frozen=True)
class DistributedDiscreteGaussian:
    """Configuration and accounting of the distributed discrete Gaussian.

    Attributes:
        sigma: Per-client σ >= 1/2 of N_Z(0, σ²), in integer steps.
        n_clients: Clients that add noise, >= 1.
        l2_sensitivity: Δ₂ > 0: largest L2 change of the *sum* when one client's
            data changes, in integer steps (after scaling, rotation and rounding).
        l1_sensitivity: Δ₁; defaults to ``Δ₂·√dim`` (always valid).
        dim: d >= 1, length of each client's vector.
        modulus_bits: b; messages and the sum live in Z_{2^b}, 1 <= b <= 62.
    """

    sigma: float
    n_clients: int
    l2_sensitivity: float = 1.0
    l1_sensitivity: float | None = None
    dim: int = 1
    modulus_bits: int = 16

    def __post_init__(self) -> None:
        if positive(self.sigma, "sigma") < 0.5:
            raise ConfigError(f"sigma must be at least 1/2 for the KLS bound, got {self.sigma}")
        positive_int(self.n_clients, "n_clients")
        positive(self.l2_sensitivity, "l2_sensitivity")
        positive_int(self.dim, "dim")
        if self.l1_sensitivity is not None:
            positive(self.l1_sensitivity, "l1_sensitivity")
        if not 1 <= positive_int(self.modulus_bits, "modulus_bits") <= 62:
            raise ConfigError(f"modulus_bits must lie in [1, 62], got {self.modulus_bits}")

    @property
    def modulus(self) -> int:
        """2^b."""
        return 1 << self.modulus_bits

    def _surviving(self, surviving: int | None) -> int:
        m = self.n_clients if surviving is None else positive_int(surviving, "surviving")
        if m > self.n_clients:
            raise ConfigError(f"surviving={m} exceeds n_clients={self.n_clients}")
        return m

    def client_share(self, rng: np.random.Generator, dim: int | None = None) -> NDArray[np.int64]:
        """One client's noise vector, N_Z(0, σ²) per coordinate, shape ``(dim,)`` (not reduced).

        Raises:
            ConfigError: invalid ``dim`` or rng.
        """
        d = self.dim if dim is None else positive_int(dim, "dim")
        return sample_discrete_gaussian(self.sigma, d, rng)

    def client_message(self, x: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """``(x + client_share) mod 2^b`` for one client's integer vector ``x``."""
        xs = np.atleast_1d(integer_input(x))
        return np.mod(xs + self.client_share(rng, xs.size).reshape(xs.shape), self.modulus)

    def aggregate(self, messages: Any) -> NDArray[np.int64]:
        """Sum of client messages (rows) mod 2^b, as residues in ``[0, 2^b)``."""
        arr = np.atleast_2d(integer_input(messages))
        return np.mod(np.mod(arr, self.modulus).sum(axis=0), self.modulus)

    def tau(self, surviving: int | None = None) -> float:
        """KLS τ for the surviving clients (0 for a single client)."""
        m = self._surviving(surviving)
        s2 = float(self.sigma) ** 2
        return 10.0 * sum(math.exp(-2.0 * math.pi**2 * s2 * k / (k + 1)) for k in range(1, m))

    def zcdp_events(self, surviving: int | None = None) -> tuple[Any, ...]:
        """The three KLS Prop. 14 bounds as dp-accounting ``ZCDpEvent``s."""
        import dp_accounting as dpa

        m = self._surviving(surviving)
        t = self.tau(m)
        d = self.dim
        l2 = float(self.l2_sensitivity)
        l1 = l2 * math.sqrt(d) if self.l1_sensitivity is None else float(self.l1_sensitivity)
        ms2 = m * float(self.sigma) ** 2
        return (
            dpa.ZCDpEvent(rho=l2 * l2 / (2 * ms2), xi=t * d),
            dpa.ZCDpEvent(rho=0.5 * (l2 * l2 / ms2 + 2 * l1 * t / math.sqrt(ms2) + t * t * d)),
            dpa.ZCDpEvent(rho=0.5 * (l2 / math.sqrt(ms2) + t * math.sqrt(d)) ** 2),
        )

    def epsilon(self, delta: float, surviving: int | None = None) -> float:
        """ε at δ > 0 of the aggregate with ``surviving`` clients (default: all), via dp-accounting."""
        return min(epsilon_for_event(e, delta) for e in self.zcdp_events(surviving))


@dataclass(frozen=True)
class DistributedSum:
    """The aggregate as a mechanism: x is one integer per client (``dim = 1``).

    Output: ``(Σ_i x_i + Σ_{i < surviving} Z_i) mod 2^b``, shape ``(n,)``.

    Attributes:
        config: The distributed discrete Gaussian (``dim`` must be 1).
        surviving: Clients whose noise reaches the sum (dropouts), default all.
    """

    config: DistributedDiscreteGaussian
    surviving: int | None = None
    name: str = "distributed_discrete_gaussian"

    def __post_init__(self) -> None:
        if self.config.dim != 1:
            raise ConfigError("DistributedSum audits scalar sums; use config.dim = 1")
        self.config._surviving(self.surviving)

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        xs = np.atleast_1d(integer_input(x))
        n = draws(n)
        m = self.config._surviving(self.surviving)
        total = np.full(n, int(xs.sum()), dtype=np.int64)
        for _ in range(m):
            total += sample_discrete_gaussian(self.config.sigma, n, rng)
        return np.mod(total, self.config.modulus)

    def accountant_epsilon(self, delta: float) -> float:
        """KLS Prop. 14 through dp-accounting (inf at δ = 0)."""
        return math.inf if delta == 0 else self.config.epsilon(delta, self.surviving)
