"""Release policies: what the client sees after decryption, and the attack features it yields.

Every policy takes the model's float scores (logits, shape ``(n, classes)``)
and releases something less informative.  The attacks never see the logits;
they see :meth:`features` of the release:

* ``phi``: the logit-scaled confidence in the true label,
  ``ln(p_y / (1 - p_y))`` (Carlini et al. 2022), computed from the release;
* ``loss``: the cross-entropy of the release (``0``/``1`` error for labels only);
* ``discrete``: whether ``phi`` takes two values only (labels), so LiRA fits a
  Bernoulli instead of a Gaussian.

Policies are frozen dataclasses; :func:`parse_policy` reads the CLI spelling
(``full``, ``round4``, ``top1``, ``dgauss0.5``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol, Union

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = [
    "DiscreteGaussianScores",
    "Features",
    "FullScores",
    "ReleasePolicy",
    "RoundedScores",
    "TopLabel",
    "default_policies",
    "parse_policy",
]

#: Largest noise standard deviation, in grid steps, the exact sampler accepts.
_MAX_SIGMA_STEPS = 7000.0


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


class _Policy(Protocol):
    @property
    def label(self) -> str: ...

    def features(self, logits: NDArray[np.float64], labels: NDArray[np.int64], rng: np.random.Generator) -> Features: ...


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


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class FullScores:
    """Release the float scores as they are (the baseline)."""

    @property
    def label(self) -> str:
        """Short name for tables: ``full``."""
        return "full"

    def release(self, logits: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
        """The logits unchanged."""
        return np.asarray(logits, dtype=np.float64)

    def features(self, logits: NDArray[np.float64], labels: NDArray[np.int64], rng: np.random.Generator) -> Features:
        """Attack features of the release (see :class:`Features`)."""
        z, y = _check_logits(logits, labels)
        return _logit_features(z, y)


@dataclass(frozen=True)
class RoundedScores:
    """Release softmax probabilities rounded to multiples of ``2**-bits``.

    Attributes:
        bits: Bits of precision per probability, in [1, 24].

    Raises:
        ConfigError: ``bits`` outside [1, 24].
    """

    bits: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or not 1 <= int(self.bits) <= 24:
            raise ConfigError(f"RoundedScores.bits must be an int in [1, 24], got {self.bits!r}")

    @property
    def label(self) -> str:
        """Short name for tables, e.g. ``round4``."""
        return f"round{self.bits}"

    def release(self, logits: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
        """Probabilities rounded to the nearest multiple of ``2**-bits``."""
        step = 2.0 ** int(self.bits)
        return np.round(_softmax(np.asarray(logits, dtype=np.float64)) * step) / step

    def features(self, logits: NDArray[np.float64], labels: NDArray[np.int64], rng: np.random.Generator) -> Features:
        """Attack features of the rounded probabilities, clipped at half a step from 0 and 1."""
        z, y = _check_logits(logits, labels)
        p = self.release(z, rng)[np.arange(z.shape[0]), y]
        floor = 2.0 ** -(int(self.bits) + 1)
        p = np.clip(p, floor, 1.0 - floor)
        return Features(phi=np.log(p) - np.log1p(-p), loss=-np.log(p))


@dataclass(frozen=True)
class TopLabel:
    """Release only the predicted label (argmax of the scores)."""

    @property
    def label(self) -> str:
        """Short name for tables: ``top1``."""
        return "top1"

    def release(self, logits: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
        """The predicted class of each row."""
        return np.argmax(np.asarray(logits, dtype=np.float64), axis=1).astype(np.int64)

    def features(self, logits: NDArray[np.float64], labels: NDArray[np.int64], rng: np.random.Generator) -> Features:
        """``phi`` is 1 for a correct label and 0 otherwise; ``loss`` is the 0/1 error."""
        z, y = _check_logits(logits, labels)
        correct = (self.release(z, rng) == y).astype(np.float64)
        return Features(phi=correct, loss=1.0 - correct, discrete=True)


@dataclass(frozen=True)
class DiscreteGaussianScores:
    """Release the scores plus discrete Gaussian noise on a fixed grid.

    The server adds integer noise ``N_Z(0, (sigma / step)**2)`` to the scores
    expressed in grid units (``step = 2**-resolution_bits`` logits), as it
    would add it to the integer outputs mod p.  The noise is
    :class:`secquant.audit.mechanisms.DiscreteGaussianMechanism` (exact
    Canonne–Kamath–Steinke sampler), fresh for every query.

    Attributes:
        sigma: Noise scale in logits, > 0.
        resolution_bits: Grid step ``2**-resolution_bits`` logits, in [0, 16].

    Raises:
        ConfigError: ``sigma`` not positive and finite, or too large for the grid.
    """

    sigma: float = 1.0
    resolution_bits: int = 6

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float, np.floating)):
            raise ConfigError(f"DiscreteGaussianScores.sigma must be a number, got {self.sigma!r}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"DiscreteGaussianScores.sigma must be finite and > 0 (logits), got {self.sigma}")
        if not isinstance(self.resolution_bits, (int, np.integer)) or not 0 <= int(self.resolution_bits) <= 16:
            raise ConfigError(f"resolution_bits must be an int in [0, 16], got {self.resolution_bits!r}")
        if self.sigma * 2.0 ** int(self.resolution_bits) > _MAX_SIGMA_STEPS:
            raise ConfigError(
                f"sigma={self.sigma} logits is {self.sigma * 2.0 ** self.resolution_bits:.0f} grid steps, above "
                f"the sampler's limit {_MAX_SIGMA_STEPS:.0f}; lower resolution_bits"
            )

    @property
    def label(self) -> str:
        """Short name for tables, e.g. ``dgauss1``."""
        return f"dgauss{self.sigma:g}"

    def release(self, logits: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
        """Scores on the grid plus fresh discrete Gaussian noise, in logits."""
        from secquant.audit.mechanisms import DiscreteGaussianMechanism

        z = np.asarray(logits, dtype=np.float64)
        scale = 2.0 ** int(self.resolution_bits)
        grid = np.round(z * scale).astype(np.int64)
        mechanism = DiscreteGaussianMechanism(sigma=self.sigma * scale, modulus=None)
        return mechanism(grid, rng, 1)[0] / scale

    def features(self, logits: NDArray[np.float64], labels: NDArray[np.int64], rng: np.random.Generator) -> Features:
        """Attack features of the noisy scores."""
        z, y = _check_logits(logits, labels)
        return _logit_features(self.release(z, rng), y)


ReleasePolicy = Union[FullScores, RoundedScores, TopLabel, DiscreteGaussianScores]


def default_policies() -> tuple[ReleasePolicy, ...]:
    """Full scores, 4-bit rounding, top-1 label, discrete Gaussian noise with σ = 1 logit."""
    return (FullScores(), RoundedScores(4), TopLabel(), DiscreteGaussianScores(1.0))


def parse_policy(text: str) -> ReleasePolicy:
    """Read a policy from its table name: ``full``, ``round<k>``, ``top1``, ``dgauss<sigma>``.

    Raises:
        ConfigError: the text names no policy.
    """
    t = str(text).strip().lower()
    if t == "full":
        return FullScores()
    if t in ("top1", "label"):
        return TopLabel()
    m = re.fullmatch(r"round:?(\d+)", t)
    if m:
        return RoundedScores(int(m.group(1)))
    m = re.fullmatch(r"dgauss:?([0-9]*\.?[0-9]+(?:e-?\d+)?)", t)
    if m:
        return DiscreteGaussianScores(float(m.group(1)))
    raise ConfigError(f"unknown release policy {text!r}; use full, round<k> (e.g. round4), top1 or dgauss<sigma> (e.g. dgauss1)")
