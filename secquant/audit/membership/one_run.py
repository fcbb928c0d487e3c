"""Auditing with one training run (Steinke, Nasr and Jagielski, NeurIPS 2023, arXiv:2305.08846).

``m`` canaries are each included in training independently with probability
1/2.  After training, the auditor guesses "in" for the ``k_plus`` highest
scores and "out" for the ``k_minus`` lowest, abstaining on the rest.  Under
(ε, δ)-DP the number of correct guesses ``v`` among ``r`` guesses is
stochastically dominated by ``Binomial(r, e^ε / (1 + e^ε))`` plus a δ term
(their Theorem 5.2 / Corollary 5.4); :func:`p_value` is the paper's Appendix D
``p_value_DP_audit`` and :func:`epsilon_lower_bound` its ``get_eps_audit``.

The guess sizes are fixed in advance (a small grid) and the grid is paid for
with a Bonferroni correction, so the bound stays valid at ``confidence``.
The scores may use shadow models as long as those were trained independently
of the target's inclusion choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from secquant.audit.estimators import check_confidence, check_delta
from secquant.errors import ConfigError

__all__ = ["OneRunResult", "epsilon_lower_bound", "one_run_audit", "p_value"]

#: Guess sizes as fractions of m (each side); 4 sizes cost a factor 4 in the p-value.
DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.25)
_BISECTION_STEPS = 40


def _check_counts(m: int, r: int, v: int) -> None:
    for name, value in (("m", m), ("r", r), ("v", v)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an int, got {value!r}")
    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 <= v <= r <= m (correct <= guesses <= canaries), got v={v}, r={r}, m={m}")


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of ``v`` correct guesses out of ``r`` with ``m`` canaries under (ε, δ)-DP.

    Args:
        m: Canaries, each included with probability 1/2.
        r: Guesses made (abstentions excluded), ``r <= m``.
        v: Correct guesses, ``v <= r``.
        epsilon: ε >= 0 of the null hypothesis, in nats.
        delta: δ in [0, 1).

    Returns:
        The p-value in [0, 1].

    Raises:
        ConfigError: invalid counts, ε or δ.
    """
    _check_counts(m, r, v)
    delta = check_delta(delta)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be finite and >= 0, got {epsilon}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta == 0.0 or v == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    cumulative = np.cumsum(stats.binom.pmf(v - i, r, q))
    alpha = float(np.max(cumulative / i))
    return min(beta + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, alpha: float) -> float:
    """Largest ε rejected at level ``alpha``: the audit's lower bound (0 if none).

    Args:
        m, r, v: Canaries, guesses, correct guesses.
        delta: δ in [0, 1).
        alpha: Significance level in (0, 1), i.e. ``1 - confidence``.

    Returns:
        ε in nats, >= 0; the low end of the bisection bracket, so it errs low.

    Raises:
        ConfigError: invalid arguments.
    """
    _check_counts(m, r, v)
    check_confidence(alpha, "alpha")
    if r == 0 or p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < alpha:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            return lo
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class OneRunResult:
    """The one-run audit of one trained model.

    Attributes:
        epsilon: Lower bound on ε (nats) valid at ``confidence`` over the whole guess grid.
        canaries: m, canaries included at random.
        guesses: r of the best grid point.
        correct: v of the best grid point.
        k_plus, k_minus: "in" and "out" guesses of the best grid point.
        grid: ``(k_plus, k_minus, correct, epsilon)`` for every grid point.
        delta, confidence: As passed.
    """

    epsilon: float
    canaries: int
    guesses: int
    correct: int
    k_plus: int
    k_minus: int
    grid: tuple[tuple[int, int, int, float], ...]
    delta: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["grid"] = [list(g) for g in self.grid]
        return d


def one_run_audit(
    scores: NDArray[np.float64],
    included: NDArray[np.bool_],
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
) -> OneRunResult:
    """ε lower bound from one training run's canary guesses.

    Args:
        scores: Attack scores of the ``m`` canaries (larger = "in"), shape ``(m,)``.
        included: Whether each canary was really trained on (each independently with probability 1/2).
        delta: δ of the hypothesis tested, in [0, 1).
        confidence: Confidence of the bound over the whole grid, in (0, 1).
        guess_fractions: Guesses per side as fractions of m, each in (0, 0.5]; fixed before looking.

    Returns:
        A :class:`OneRunResult`.

    Raises:
        ConfigError: shapes disagree, fewer than 2 canaries, non-finite scores, bad fractions.
    """
    s = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    if s.ndim != 1 or inc.shape != s.shape or s.size < 2:
        raise ConfigError(f"scores and included must be 1-D of the same length >= 2, got {s.shape} and {inc.shape}")
    if not np.all(np.isfinite(s)):
        raise ConfigError("one-run scores contain NaN or infinity")
    fractions = [float(f) for f in guess_fractions]
    if not fractions or any(not 0.0 < f <= 0.5 for f in fractions):
        raise ConfigError(f"guess_fractions must be non-empty, each in (0, 0.5], got {guess_fractions!r}")
    confidence = check_confidence(confidence)
    delta = check_delta(delta)
    m = s.size
    alpha = (1.0 - confidence) / len(fractions)
    # A stable sort with a fixed tie order: ties never favour the auditor.
    order = np.argsort(s, kind="stable")
    grid = []
    for f in fractions:
        k = max(1, int(round(f * m)))
        out_idx, in_idx = order[:k], order[m - k :]
        v = int(inc[in_idx].sum() + (~inc[out_idx]).sum())
        grid.append((k, k, v, epsilon_lower_bound(m, 2 * k, v, delta, alpha)))
    best = max(grid, key=lambda g: g[3])
    return OneRunResult(
        epsilon=float(best[3]), canaries=m, guesses=best[0] + best[1], correct=best[2], k_plus=best[0],
        k_minus=best[1], grid=tuple(grid), delta=delta, confidence=confidence,
    )
