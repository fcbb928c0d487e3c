"""Membership-inference attacks: loss/confidence thresholds and LiRA (Carlini et al. 2022).

Every attack returns one score per example; a larger score means "more likely
a member".  Inputs are :class:`~secquant.audit.membership.policies.Features`
(what the release lets an attacker compute), never the raw model.

LiRA fits, for each example, the distribution of ``phi`` over shadow models
that included it (IN) and that did not (OUT): a Gaussian for continuous
``phi`` (with one global variance when there are fewer than 64 shadows, as
the paper recommends), a Bernoulli for 0/1 ``phi`` (labels only).

* online: log-likelihood ratio ``log p_IN(phi) - log p_OUT(phi)``;
* offline: one-sided test against OUT only, ``-log P_OUT[Phi >= phi]``.
"""

from __future__ import annotations

import enum

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from secquant.errors import ConfigError

__all__ = ["AttackKind", "confidence_scores", "lira_scores", "loss_scores"]

#: Shadow count under which LiRA uses one global variance per side.
GLOBAL_VARIANCE_BELOW = 64
_MIN_STD = 1e-3


class AttackKind(enum.Enum):
    """The attacks an audit runs."""

    LOSS = "loss"
    CONFIDENCE = "confidence"
    LIRA_OFFLINE = "lira_offline"
    LIRA_ONLINE = "lira_online"

    @property
    def needs_shadows(self) -> bool:
        """LiRA needs shadow models; the threshold attacks do not."""
        return self in (AttackKind.LIRA_OFFLINE, AttackKind.LIRA_ONLINE)


def loss_scores(loss: NDArray[np.float64]) -> NDArray[np.float64]:
    """Loss threshold attack (Yeom et al. 2018): score ``-loss``."""
    return -np.asarray(loss, dtype=np.float64)


def confidence_scores(phi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Confidence threshold attack: score ``phi`` (logit-scaled confidence in the true label)."""
    return np.asarray(phi, dtype=np.float64)


def _masked_stats(values: NDArray[np.float64], mask: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    n = mask.sum(axis=0).astype(np.float64)
    total = np.where(mask, values, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.full(values.shape[1], np.nan), where=n > 0)
    sq = np.where(mask, (values - np.nan_to_num(mean)) ** 2, 0.0).sum(axis=0)
    var = np.divide(sq, n - 1, out=np.full(values.shape[1], np.nan), where=n > 1)
    return mean, var, n


def lira_scores(
    target_phi: NDArray[np.float64],
    shadow_phi: NDArray[np.float64],
    shadow_in: NDArray[np.bool_],
    *,
    online: bool = True,
    discrete: bool = False,
    global_variance: bool | None = None,
) -> NDArray[np.float64]:
    """LiRA scores for one target model.

    Args:
        target_phi: ``phi`` of the target on each example, shape ``(N,)``.
        shadow_phi: ``phi`` of each shadow model, shape ``(S, N)``.
        shadow_in: Whether each shadow trained on each example, shape ``(S, N)``.
        online: Use IN and OUT shadows (True) or OUT only (False).
        discrete: ``phi`` is 0/1; fit Bernoulli (Laplace-smoothed) instead of Gaussians.
        global_variance: One variance per side for all examples; default when ``S < 64``.

    Returns:
        Scores of shape ``(N,)``; larger means more likely a member.

    Raises:
        ConfigError: shapes disagree, no shadows, or (online) no IN/OUT shadow at all.
    """
    t = np.asarray(target_phi, dtype=np.float64)
    s = np.asarray(shadow_phi, dtype=np.float64)
    m_in = np.asarray(shadow_in, dtype=bool)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1:] != t.shape or m_in.shape != s.shape:
        raise ConfigError(f"need shadow_phi and shadow_in of shape (S>=1, {t.shape[0] if t.ndim else '?'}), "
                          f"got {s.shape} and {m_in.shape} for target {t.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
        raise ConfigError("LiRA inputs contain NaN or infinity")
    m_out = ~m_in
    if not m_out.any() or (online and not m_in.any()):
        raise ConfigError("LiRA needs shadow models with the example left out (and, online, included)")
    if discrete:
        def rate(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
            return (np.where(mask, s, 0.0).sum(axis=0) + 1.0) / (mask.sum(axis=0) + 2.0)

        p_out = rate(m_out)
        if not online:
            return np.where(t > 0.5, -np.log(p_out), 0.0)
        p_in = rate(m_in)
        return np.where(t > 0.5, np.log(p_in) - np.log(p_out), np.log1p(-p_in) - np.log1p(-p_out))
    if global_variance is None:
        global_variance = s.shape[0] < GLOBAL_VARIANCE_BELOW
    mu_out, var_out, _ = _masked_stats(s, m_out)
    mu_out = np.where(np.isnan(mu_out), s[m_out].mean(), mu_out)
    sd_out = np.sqrt(np.nanmean(var_out)) if global_variance else np.sqrt(np.where(np.isnan(var_out), np.nanmean(var_out), var_out))
    sd_out = np.maximum(np.nan_to_num(sd_out, nan=1.0), _MIN_STD)
    if not online:
        return -stats.norm.logsf(t, loc=mu_out, scale=sd_out)
    mu_in, var_in, _ = _masked_stats(s, m_in)
    mu_in = np.where(np.isnan(mu_in), s[m_in].mean(), mu_in)
    sd_in = np.sqrt(np.nanmean(var_in)) if global_variance else np.sqrt(np.where(np.isnan(var_in), np.nanmean(var_in), var_in))
    sd_in = np.maximum(np.nan_to_num(sd_in, nan=1.0), _MIN_STD)
    return stats.norm.logpdf(t, loc=mu_in, scale=sd_in) - stats.norm.logpdf(t, loc=mu_out, scale=sd_out)
