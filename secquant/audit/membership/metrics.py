"""Metrics of a membership-inference attack: ROC, AUC, TPR at low FPR, ε lower bound.

The ε lower bound uses the estimators shared with the mechanism auditor
(:func:`secquant.audit.estimators.epsilon_lower_bound_from_counts`: one-sided
Clopper–Pearson bounds on TPR and FPR, ``ε >= ln((TPR - δ)/FPR)`` and its
complement).  Selection and estimation are kept apart: the threshold is chosen
on a random half of the examples and the counts are taken on the other half.

Caveat, stated in every report: the counts treat examples as independent
trials.  Membership of different examples in one model is not independent in
general, so this ε is an attack-strength summary; the one-run audit
(:mod:`~secquant.audit.membership.one_run`) is the bound with a proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.estimators import (
    EpsilonBound,
    clopper_pearson_lower,
    clopper_pearson_upper,
    epsilon_from_rates,
    epsilon_lower_bound_from_counts,
    joint_alpha,
)
from secquant.errors import ConfigError

__all__ = ["AttackMetrics", "attack_metrics", "auc", "epsilon_bound_split", "roc_curve", "tpr_at_fpr"]

#: FPR levels reported by default (0.1 % and 1 %).
FPR_LEVELS = (0.001, 0.01)
_MAX_CANDIDATES = 512


def _check(scores: NDArray[np.float64], members: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(members)
    if s.ndim != 1 or m.shape != s.shape:
        raise ConfigError(f"scores and members must be 1-D of equal length, got {s.shape} and {m.shape}")
    if m.dtype != bool:
        raise ConfigError(f"members must be booleans, got {m.dtype}")
    if not np.all(np.isfinite(s)):
        raise ConfigError("attack scores contain NaN or infinity")
    if m.all() or not m.any():
        raise ConfigError("need both members and non-members to measure an attack")
    return s, m


def roc_curve(scores: NDArray[np.float64], members: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ROC of "member if score >= t" over every threshold.

    Returns:
        ``(fpr, tpr)``, non-decreasing, starting at (0, 0) and ending at (1, 1).

    Raises:
        ConfigError: shapes disagree, non-finite scores, or one class only.
    """
    s, m = _check(scores, members)
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], m[order]
    tp = np.cumsum(m_sorted)
    fp = np.cumsum(~m_sorted)
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # one point per distinct threshold
    tpr = np.r_[0.0, tp[last] / m.sum()]
    fpr = np.r_[0.0, fp[last] / (~m).sum()]
    return fpr, tpr


def auc(fpr: NDArray[np.float64], tpr: NDArray[np.float64]) -> float:
    """Area under the ROC curve (trapezoids), in [0, 1]."""
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    return float(trapezoid(tpr, fpr))


def tpr_at_fpr(fpr: NDArray[np.float64], tpr: NDArray[np.float64], level: float) -> float:
    """Largest TPR among thresholds whose FPR is at most ``level`` (no interpolation).

    Raises:
        ConfigError: ``level`` outside [0, 1].
    """
    if not 0.0 <= level <= 1.0:
        raise ConfigError(f"FPR level must lie in [0, 1], got {level}")
    ok = fpr <= level + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _best_threshold(s: NDArray[np.float64], m: NDArray[np.bool_], delta: float, alpha: float) -> float:
    cands = np.unique(s)
    if cands.size > _MAX_CANDIDATES:
        cands = np.unique(np.quantile(s, np.linspace(0, 1, _MAX_CANDIDATES)))
    guess = s[None, :] >= cands[:, None]
    tp = (guess & m).sum(axis=1)
    fp = (guess & ~m).sum(axis=1)
    lo = clopper_pearson_lower(tp, int(m.sum()), alpha)
    hi = clopper_pearson_upper(fp, int((~m).sum()), alpha)
    eps = np.asarray(epsilon_from_rates(lo, hi, delta))
    return float(cands[int(np.argmax(eps))])


def epsilon_bound_split(
    scores: NDArray[np.float64],
    members: NDArray[np.bool_],
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[EpsilonBound, float]:
    """ε lower bound of the attack "member iff score >= threshold".

    The threshold maximizes the bound on a random half (``seed``); the bound is
    computed on the other half with :func:`epsilon_lower_bound_from_counts`.

    Returns:
        The :class:`EpsilonBound` and the threshold used.

    Raises:
        ConfigError: invalid inputs, or a half without members or non-members.
    """
    s, m = _check(scores, members)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(s.size)
    sel, est = pick[: s.size // 2], pick[s.size // 2 :]
    if m[sel].all() or not m[sel].any() or m[est].all() or not m[est].any():
        raise ConfigError("too few members or non-members to split for the ε bound; use more examples")
    threshold = _best_threshold(s[sel], m[sel], delta, joint_alpha(confidence, 2))
    guess = s[est] >= threshold
    me = m[est]
    bound = epsilon_lower_bound_from_counts(
        int((guess & me).sum()), int(me.sum()), int((guess & ~me).sum()), int((~me).sum()), delta, confidence
    )
    return bound, threshold


@dataclass(frozen=True, eq=False)
class AttackMetrics:
    """Everything reported for one attack.

    Attributes:
        auc: Area under the ROC curve, in [0, 1] (0.5 = guessing).
        tpr_at: FPR level -> TPR at that level (0.001 and 0.01 by default).
        epsilon: ε lower bound (nats) with its counts, from the split (see module caveat).
        threshold: Score threshold used for ``epsilon``.
        members, non_members: Examples of each kind scored.
        fpr, tpr: The ROC curve, thinned to at most 400 points for plots.
    """

    auc: float
    tpr_at: dict[float, float]
    epsilon: EpsilonBound
    threshold: float
    members: int
    non_members: int
    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]

    def to_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-ready dict (the ROC curve optional)."""
        d: dict[str, Any] = {
            "auc": self.auc,
            "tpr_at_fpr": {f"{k:g}": v for k, v in self.tpr_at.items()},
            "epsilon_lower_bound": self.epsilon.to_dict(),
            "threshold": self.threshold,
            "members": self.members,
            "non_members": self.non_members,
        }
        if curve:
            d["roc"] = {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist()}
        return d


def _thin(fpr: NDArray[np.float64], tpr: NDArray[np.float64], points: int = 400) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if fpr.size <= points:
        return fpr, tpr
    grid = np.unique(np.r_[0, np.geomspace(1e-5, 1, points - 1)])
    idx = np.minimum(np.searchsorted(fpr, grid, side="right") - 1, fpr.size - 1)
    idx = np.unique(np.r_[0, np.maximum(idx, 0), fpr.size - 1])
    return fpr[idx], tpr[idx]


def attack_metrics(
    scores: NDArray[np.float64],
    members: NDArray[np.bool_],
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    fpr_levels: tuple[float, ...] = FPR_LEVELS,
    seed: int = 0,
) -> AttackMetrics:
    """AUC, TPR at each FPR level, and the split ε lower bound of one attack.

    Raises:
        ConfigError: invalid inputs (see :func:`roc_curve`, :func:`epsilon_bound_split`).
    """
    fpr, tpr = roc_curve(scores, members)
    bound, threshold = epsilon_bound_split(scores, members, delta=delta, confidence=confidence, seed=seed)
    tf, tt = _thin(fpr, tpr)
    m = np.asarray(members)
    return AttackMetrics(
        auc=auc(fpr, tpr), tpr_at={lvl: tpr_at_fpr(fpr, tpr, lvl) for lvl in fpr_levels}, epsilon=bound,
        threshold=threshold, members=int(m.sum()), non_members=int((~m).sum()), fpr=tf, tpr=tt,
    )
