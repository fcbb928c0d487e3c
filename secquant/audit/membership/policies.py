"""Release policies as the membership attacks see them: the features each release yields.

The policies themselves are defined once, in :mod:`secquant.dp.release` (the
service and the extraction audit use the same types); this module computes
what the attacks use from a release of float scores (logits, shape
``(n, classes)``):

* ``phi``: the logit-scaled confidence in the true label,
  ``ln(p_y / (1 - p_y))`` (Carlini et al. 2022), computed from the release;
* ``loss``: the cross-entropy of the release (``0``/``1`` error for labels only);
* ``discrete``: whether ``phi`` takes two values only (labels), so LiRA fits a
  Bernoulli instead of a Gaussian.

The historical names are aliases of the shared types: :data:`FullScores` is
:class:`~secquant.dp.release.FullLogits`, :data:`RoundedScores` is
:class:`~secquant.dp.release.RoundedProbabilities`, :data:`DiscreteGaussianScores`
is :class:`~secquant.dp.release.DiscreteGaussianLogits` (σ in logits on a
``2**-resolution_bits`` grid).  :func:`parse_policy` reads the CLI spelling
(``full``, ``round4``, ``lround4``, ``top1``, ``dgauss0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secquant.dp.release import (
    RELEASE_POLICY_TYPES,
    DiscreteGaussianLogits,
    FullLogits,
    ReleasePolicy,
    RoundedLogits,
    RoundedProbabilities,
    TopLabel,
    parse_policy,
)
from secquant.errors import ConfigError

__all__ = [
    "DiscreteGaussianScores",
    "Features",
    "FullScores",
    "ReleasePolicy",
    "RoundedScores",
    "TopLabel",
    "default_policies",
    "features",
    "is_release_policy",
    "parse_policy",
]

FullScores = FullLogits
RoundedScores = RoundedProbabilities
DiscreteGaussianScores = DiscreteGaussianLogits


@dataclass(frozen=True, eq=False)
class Features:
    """What the attacks use, derived from one release.

    Attributes:
        phi: Logit-scaled confidence in the true label, shape ``(n,)``; larger means more confident.
        loss: Cross-entropy of the release in nats (0/1 error for labels), shape ``(n,)``.
        discrete: ``phi`` is 0/1 (correct label or not) rather than continuous.
    """

    phi: NDArray[np.float64]
    loss: NDArray[np.float64]
    discrete: bool = False


def is_release_policy(obj: object) -> bool:
    """Whether ``obj`` is one of the shared release-policy types."""
    return isinstance(obj, RELEASE_POLICY_TYPES)


def _check_logits(logits: NDArray[np.float64], labels: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ConfigError(f"scores must have shape (n, classes) with classes >= 2, got {z.shape}")
    if y.shape != (z.shape[0],) or y.dtype.kind not in "iu":
        raise ConfigError(f"labels must be integers of shape ({z.shape[0]},), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ConfigError(f"labels must lie in [0, {z.shape[1]}), got range [{y.min()}, {y.max()}]")
    return z, y.astype(np.int64)


def _logit_features(z: NDArray[np.float64], y: NDArray[np.int64]) -> Features:
    """Exact log-odds of the true class from logits: ``z_y - logsumexp_{j != y} z_j``."""
    rows = np.arange(z.shape[0])
    zy = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    m = np.max(others, axis=1, keepdims=True)
    lse_others = m[:, 0] + np.log(np.sum(np.exp(others - m), axis=1))
    mall = np.max(z, axis=1, keepdims=True)
    lse_all = mall[:, 0] + np.log(np.sum(np.exp(z - mall), axis=1))
    return Features(phi=zy - lse_others, loss=lse_all - zy)


def features(policy: ReleasePolicy, logits: NDArray[np.float64], labels: NDArray[np.int64],
             rng: np.random.Generator) -> Features:
    """Attack features of ``policy``'s release of float ``logits`` (see :class:`Features`).

    Logit releases give exact log-odds of the released scores; rounded
    probabilities are clipped at half a step from 0 and 1; a top-1 label gives
    ``phi = 1`` when correct, else 0, and the 0/1 loss.

    Raises:
        ConfigError: not a release policy, or logits/labels of the wrong shape or range.
    """
    if not is_release_policy(policy):
        raise ConfigError(f"{policy!r} is not a release policy; use one of secquant.dp.release "
                          "(or parse_policy('round4'))")
    z, y = _check_logits(logits, labels)
    if isinstance(policy, TopLabel):
        correct = (policy.release(z, rng) == y).astype(np.float64)
        return Features(phi=correct, loss=1.0 - correct, discrete=True)
    if isinstance(policy, RoundedProbabilities):
        p = policy.release(z, rng)[np.arange(z.shape[0]), y]
        floor = 2.0 ** -(policy.bits + 1)
        p = np.clip(p, floor, 1.0 - floor)
        return Features(phi=np.log(p) - np.log1p(-p), loss=-np.log(p))
    if isinstance(policy, (FullLogits, RoundedLogits, DiscreteGaussianLogits)):
        return _logit_features(policy.release(z, rng), y)
    raise ConfigError(f"no membership features for {policy.label}")  # pragma: no cover - all types handled


def default_policies() -> tuple[ReleasePolicy, ...]:
    """Full scores, 4-bit rounded probabilities, top-1 label, discrete Gaussian noise with σ = 1 logit."""
    return (FullLogits(), RoundedProbabilities(4), TopLabel(), DiscreteGaussianLogits(1.0))
