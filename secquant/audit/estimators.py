"""Pure estimators shared by every audit: one-sided Clopper–Pearson bounds and ε lower bounds.

Nothing here holds state or draws randomness.  The membership-inference audit
(issue 5) reuses these functions, so their names are part of the public API.

Conventions:

* ``alpha`` is a one-sided error probability in ``(0, 1)``; a bound computed at
  ``alpha`` fails to cover the true value with probability at most ``alpha``.
* ``confidence`` is ``1 - alpha`` for a *joint* statement.  Two independent
  one-sided bounds (say on P1 from the x1 samples and on P0 from the x0
  samples) hold together with probability ``confidence`` when each is taken at
  level ``sqrt(confidence)``; see :func:`joint_alpha`.
* ε is in nats (natural logarithm), δ a probability in ``[0, 1)``.

A lower bound on ε is never negative: when the data give no evidence,
the functions return ``0.0``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from secquant.dp.accounting import check_delta
from secquant.errors import ConfigError

__all__ = [
    "EpsilonBound",
    "check_confidence",
    "check_delta",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "epsilon_from_probabilities",
    "epsilon_from_rates",
    "epsilon_lower_bound_from_counts",
    "joint_alpha",
]


def check_confidence(confidence: float, what: str = "confidence") -> float:
    """Return ``confidence`` as a float after checking it lies strictly inside (0, 1).

    Raises:
        ConfigError: not a finite number in (0, 1).
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)):
        raise ConfigError(f"{what} must be a number in (0, 1), got {confidence!r}")
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{what} must lie strictly between 0 and 1 (e.g. 0.95), got {value}")
    return value


def joint_alpha(confidence: float, parts: int = 2) -> float:
    """One-sided level for each of ``parts`` independent bounds so they hold jointly at ``confidence``.

    Independent events each of probability ``1 - a`` all hold with probability
    ``(1 - a) ** parts``; this returns ``a = 1 - confidence ** (1 / parts)``,
    slightly larger (better) than the Bonferroni ``(1 - confidence) / parts``.

    Raises:
        ConfigError: confidence outside (0, 1) or ``parts < 1``.
    """
    confidence = check_confidence(confidence)
    if parts < 1:
        raise ConfigError(f"parts must be at least 1, got {parts}")
    return -math.expm1(math.log(confidence) / parts)


def _counts(k: ArrayLike, n: ArrayLike, alpha: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    check_confidence(alpha, "alpha")
    ks = np.asarray(k, dtype=np.float64)
    ns = np.asarray(n, dtype=np.float64)
    if np.any(ns <= 0) or np.any(ks < 0) or np.any(ks > ns):
        raise ConfigError("counts must satisfy 0 <= k <= n and n > 0")
    return ks, ns


def clopper_pearson_lower(k: ArrayLike, n: ArrayLike, alpha: float) -> NDArray[np.float64] | float:
    """One-sided Clopper–Pearson lower bound on a binomial proportion.

    ``P[p < bound] <= alpha`` for every true ``p``.  It is the exact interval of
    :func:`scipy.stats.binomtest` with ``alternative="greater"``, computed with
    :data:`scipy.stats.beta` so it vectorizes.  Non-integer ``k`` (projected
    counts) are accepted and interpolate smoothly.

    Args:
        k: Successes, ``0 <= k <= n``; scalar or array.
        n: Trials, ``n > 0``; broadcasts against ``k``.
        alpha: One-sided error probability in (0, 1).

    Returns:
        The bound in ``[0, 1]``: a float for scalar input, else an array.

    Raises:
        ConfigError: invalid counts or ``alpha``.
    """
    ks, ns = _counts(k, n, alpha)
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(alpha, np.maximum(ks, 1e-300), ns - ks + 1.0)
    out = np.where(ks <= 0, 0.0, lo)
    return float(out) if out.ndim == 0 else out


def clopper_pearson_upper(k: ArrayLike, n: ArrayLike, alpha: float) -> NDArray[np.float64] | float:
    """One-sided Clopper–Pearson upper bound on a binomial proportion.

    ``P[p > bound] <= alpha`` for every true ``p`` (``binomtest(..., alternative="less")``).
    With ``k = 0`` this is ``1 - alpha ** (1 / n)``, about ``ln(1/alpha) / n``.

    Args:
        k: Successes, ``0 <= k <= n``; scalar or array.
        n: Trials, ``n > 0``.
        alpha: One-sided error probability in (0, 1).

    Returns:
        The bound in ``[0, 1]``: a float for scalar input, else an array.

    Raises:
        ConfigError: invalid counts or ``alpha``.
    """
    ks, ns = _counts(k, n, alpha)
    with np.errstate(invalid="ignore"):
        hi = stats.beta.ppf(1.0 - alpha, ks + 1.0, np.maximum(ns - ks, 1e-300))
    out = np.where(ks >= ns, 1.0, hi)
    return float(out) if out.ndim == 0 else out


def epsilon_from_probabilities(
    p1: ArrayLike, p0: ArrayLike, delta: float = 0.0
) -> NDArray[np.float64] | float:
    """The ε that (ε, δ)-DP needs so that ``p1 <= exp(ε) · p0 + δ``: ``ln((p1 - δ) / p0)``.

    Plug in a lower bound for ``p1 = P[M(x1) ∈ S]`` and an upper bound for
    ``p0 = P[M(x0) ∈ S]`` to get a lower bound on ε.  Only this direction is
    computed; swap the arguments (or use the complement event) for the other.

    Args:
        p1: Probability (or its lower bound) of the event under the first input, in [0, 1].
        p0: Probability (or its upper bound) under the second input, in [0, 1].
        delta: δ in [0, 1).

    Returns:
        ε in nats, at least 0 (0 when ``p1 <= δ`` or ``p1 - δ <= p0``), ``inf`` when ``p0 = 0 < p1 - δ``.

    Raises:
        ConfigError: δ outside [0, 1).
    """
    delta = check_delta(delta)
    a = np.asarray(p1, dtype=np.float64) - delta
    b = np.asarray(p0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(a <= 0, 0.0, np.log(np.where(a <= 0, 1.0, a)) - np.log(b))
    eps = np.maximum(np.nan_to_num(eps, nan=0.0, posinf=np.inf), 0.0)
    return float(eps) if eps.ndim == 0 else eps


def epsilon_from_rates(tpr: ArrayLike, fpr: ArrayLike, delta: float = 0.0) -> NDArray[np.float64] | float:
    """ε implied by a distinguisher with true- and false-positive rates (TPR, FPR).

    (ε, δ)-DP forces both ``TPR <= e^ε FPR + δ`` and ``1 - FPR <= e^ε (1 - TPR) + δ``,
    so ``ε >= max(ln((TPR - δ)/FPR), ln((1 - FPR - δ)/(1 - TPR)))``.  Both use a
    *lower* bound on TPR and an *upper* bound on FPR, so one pair of
    confidence bounds covers both formulas at once.

    Args:
        tpr: P[distinguisher says "x1" | x1], or its lower confidence bound.
        fpr: P[distinguisher says "x1" | x0], or its upper confidence bound.
        delta: δ in [0, 1).

    Returns:
        ε in nats, at least 0.

    Raises:
        ConfigError: δ outside [0, 1).
    """
    t = np.asarray(tpr, dtype=np.float64)
    f = np.asarray(fpr, dtype=np.float64)
    first = np.asarray(epsilon_from_probabilities(t, f, delta))
    second = np.asarray(epsilon_from_probabilities(1.0 - f, 1.0 - t, delta))
    out = np.maximum(first, second)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class EpsilonBound:
    """A lower confidence bound on ε from one event (or one attack) and its ingredients.

    Attributes:
        epsilon: Lower bound on ε in nats, valid at ``confidence``; ``>= 0``.
        count1: Times the event occurred among ``samples1`` draws of M(x1) (or true positives).
        samples1: Draws of M(x1) (or members / positives).
        count0: Times the event occurred among ``samples0`` draws of M(x0) (or false positives).
        samples0: Draws of M(x0) (or non-members / negatives).
        p1: Point estimate ``count1 / samples1``.
        p1_lower: One-sided Clopper–Pearson lower bound on P1.
        p0: Point estimate ``count0 / samples0``.
        p0_upper: One-sided Clopper–Pearson upper bound on P0.
        delta: δ used in the bound.
        confidence: Joint confidence of ``p1_lower`` and ``p0_upper`` (and so of ``epsilon``).
        point_estimate: ε from the point estimates (not a bound; for reading only).
    """

    epsilon: float
    count1: int
    samples1: int
    count0: int
    samples0: int
    p1: float
    p1_lower: float
    p0: float
    p0_upper: float
    delta: float
    confidence: float
    point_estimate: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` is kept as a float; ``json`` writes it as ``Infinity``)."""
        return asdict(self)


def epsilon_lower_bound_from_counts(
    count1: int,
    samples1: int,
    count0: int,
    samples0: int,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> EpsilonBound:
    """Lower confidence bound on ε from event counts under two independent sample sets.

    With ``P1 = P[M(x1) ∈ S]`` and ``P0 = P[M(x0) ∈ S]``, it returns
    ``max(ln((P1_lo - δ)/P0_hi), ln((1 - P0_hi - δ)/(1 - P1_lo)))``, the second
    term being the same inequality for the complement of S.  ``P1_lo`` and
    ``P0_hi`` are one-sided Clopper–Pearson bounds each at level
    ``sqrt(confidence)``, so they hold jointly (the samples are independent) and
    the result is a valid lower bound with probability at least ``confidence``
    -- provided S was chosen without looking at these samples.

    For a membership-inference attack pass true positives / members as
    ``count1 / samples1`` and false positives / non-members as ``count0 / samples0``.

    Args:
        count1: Occurrences among the ``samples1`` draws under x1, ``0 <= count1 <= samples1``.
        samples1: Draws under x1, at least 1.
        count0: Occurrences among the ``samples0`` draws under x0.
        samples0: Draws under x0, at least 1.
        delta: δ in [0, 1).
        confidence: Joint confidence in (0, 1).

    Returns:
        An :class:`EpsilonBound`.

    Raises:
        ConfigError: invalid counts, δ or confidence.
    """
    delta = check_delta(delta)
    alpha = joint_alpha(confidence, 2)
    for name, k, n in (("count1", count1, samples1), ("count0", count0, samples0)):
        if int(n) < 1 or not 0 <= int(k) <= int(n):
            raise ConfigError(f"{name}={k} must lie in [0, samples] with samples >= 1 (samples={n})")
    p1_lo = float(clopper_pearson_lower(count1, samples1, alpha))
    p0_hi = float(clopper_pearson_upper(count0, samples0, alpha))
    p1, p0 = count1 / samples1, count0 / samples0
    return EpsilonBound(
        epsilon=float(epsilon_from_rates(p1_lo, p0_hi, delta)),
        count1=int(count1),
        samples1=int(samples1),
        count0=int(count0),
        samples0=int(samples0),
        p1=p1,
        p1_lower=p1_lo,
        p0=p0,
        p0_upper=p0_hi,
        delta=delta,
        confidence=float(confidence),
        point_estimate=float(epsilon_from_rates(p1, p0, delta)),
    )
