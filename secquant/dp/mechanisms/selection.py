"""Selection mechanisms: report-noisy-max and the sparse vector technique (SVT).

dp-accounting has no event for either, so their claims come from the
literature (named in each docstring).  ``accountant_epsilon`` returns what
dp-accounting *can* certify: report-noisy-max is post-processing of k Laplace
releases (a valid but loose ``k·Δ/b``); SVT has no dp-accounting model (None).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.dp.accounting import epsilon_for_event
from secquant.dp.mechanisms.base import draws, positive, positive_int, real_input
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["ReportNoisyMax", "SparseVector", "SvtVariant"]


@dataclass(frozen=True)
class ReportNoisyMax:
    """Report-noisy-max with Laplace noise of scale ``2Δ/ε`` on each of k queries.

    Returning the *index* of the largest noisy answer is ε-DP for queries of
    sensitivity Δ each (Dwork & Roth 2014, Claim 3.9; the factor 2 covers
    queries that move in different directions).  Returning the noisy *value*
    (``return_value=True``, the bug) is not ε-DP: for k queries the lower tail
    of the maximum leaks up to ``k·ε/2``.

    Input: a length-k vector of query answers.  Output: int64 indices, or float values.

    Attributes:
        epsilon: Claimed ε in nats.
        sensitivity: Δ > 0 of each query.
        return_value: True reproduces the bug.
    """

    epsilon: float = 1.0
    sensitivity: float = 1.0
    return_value: bool = False
    name: str = "report_noisy_max"

    def __post_init__(self) -> None:
        positive(self.epsilon, "epsilon")
        positive(self.sensitivity, "sensitivity")

    @property
    def scale(self) -> float:
        """Laplace scale b = 2Δ/ε."""
        return 2.0 * self.sensitivity / self.epsilon

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[Any]:
        q = real_input(x)
        if q.ndim != 1 or q.size < 1:
            raise ConfigError(f"input must be a non-empty 1-D vector of query answers, got shape {q.shape}")
        noisy = q[None, :] + rng.laplace(0.0, self.scale, (draws(n), q.size))
        return noisy.max(axis=1) if self.return_value else noisy.argmax(axis=1).astype(np.int64)

    def accountant_epsilon(self, delta: float, num_queries: int = 1) -> float:
        """dp-accounting's ε for releasing all ``num_queries`` noisy answers (an upper bound).

        Args:
            delta: δ in [0, 1).
            num_queries: k, the length of the input vector.
        """
        import dp_accounting as dpa

        k = positive_int(num_queries, "num_queries")
        return epsilon_for_event(dpa.ComposedDpEvent([dpa.LaplaceDpEvent(self.scale / self.sensitivity)] * k), delta)


class SvtVariant(enum.Enum):
    """Sparse-vector variants of Lyu, Su and Li, "Understanding the Sparse Vector Technique
    for Differential Privacy", PVLDB 10(6), 2017, Figure 1 (their numbering)."""

    ALG1 = "alg1"  #: Lyu et al.'s own: ρ~Lap(Δ/ε1), ν~Lap(2cΔ/ε2), cutoff c; ε-DP (their Thm. 2).
    ALG3 = "alg3"  #: Roth 2011: ν~Lap(cΔ/ε2) and outputs q+ν when above; not ε-DP for any ε.
    ALG5 = "alg5"  #: Stoddard et al. 2014: no query noise, no cutoff; ∞-DP.
    ALG6 = "alg6"  #: Chen et al. 2015: ν~Lap(Δ/ε2), no cutoff; ∞-DP.


@dataclass(frozen=True)
class SparseVector:
    """Above-threshold queries with a noisy threshold (ε1 = ε2 = ε/2).

    Input: a length-m vector of query answers, each of sensitivity Δ.  Output
    per draw, shape ``(n, m)``:

    * ALG1, ALG5, ALG6: int8, 1 = above (⊤), 0 = below (⊥), -1 = not answered
      (after the c-th ⊤ the algorithm stops);
    * ALG3: float, the noisy answer ``q_i + ν_i`` where ⊤, NaN elsewhere.

    Only ALG1 is ε-DP (Lyu et al. 2017, Theorem 2); the claimed ε of the others
    is what their authors claimed, and Lyu et al. (Table 1) show they satisfy no
    finite ε.  dp-accounting has no SVT event.

    Attributes:
        epsilon: Claimed ε in nats.
        threshold: T, the public threshold.
        cutoff: c >= 1, the number of ⊤ answers before stopping (ignored by ALG5/ALG6).
        sensitivity: Δ > 0.
        variant: Which algorithm.
    """

    epsilon: float = 1.0
    threshold: float = 0.5
    cutoff: int = 1
    sensitivity: float = 1.0
    variant: SvtVariant = SvtVariant.ALG1
    name: str = "sparse_vector"

    def __post_init__(self) -> None:
        positive(self.epsilon, "epsilon")
        positive(self.sensitivity, "sensitivity")
        positive_int(self.cutoff, "cutoff")
        object.__setattr__(self, "variant", coerce_enum(self.variant, SvtVariant, "variant"))

    def __call__(self, x: Any, rng: np.random.Generator, n: int) -> NDArray[Any]:
        q = real_input(x)
        if q.ndim != 1 or q.size < 1:
            raise ConfigError(f"input must be a non-empty 1-D vector of query answers, got shape {q.shape}")
        n, m = draws(n), q.size
        e1 = e2 = self.epsilon / 2.0
        d, c, v = self.sensitivity, self.cutoff, self.variant
        rho = rng.laplace(0.0, d / e1, (n, 1))
        if v is SvtVariant.ALG5:
            nu = np.zeros((n, m))
        else:
            nu_scale = {SvtVariant.ALG1: 2 * c * d / e2, SvtVariant.ALG3: c * d / e2, SvtVariant.ALG6: d / e2}[v]
            nu = rng.laplace(0.0, nu_scale, (n, m))
        noisy = q[None, :] + nu
        above = noisy >= self.threshold + rho
        if v in (SvtVariant.ALG5, SvtVariant.ALG6):
            return above.astype(np.int8)
        before: NDArray[np.int64] = np.cumsum(above, axis=1) - above  # ⊤ answers strictly before each query
        answered = before < c
        if v is SvtVariant.ALG3:
            return np.where(answered & above, noisy, np.nan)
        return np.where(answered, above.astype(np.int8), np.int8(-1)).astype(np.int8)

    def accountant_epsilon(self, delta: float) -> None:
        """dp-accounting has no model of SVT; always None."""
        return None
