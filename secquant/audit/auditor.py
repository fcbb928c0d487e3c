"""Empirical ε lower bounds for a randomized mechanism, at a stated confidence.

Procedure of :func:`audit_mechanism` for a neighbouring pair (x0, x1):

1. **Selection.** Draw ``selection_fraction · samples`` outputs per input and
   choose one event S with :func:`secquant.audit.events.select_event` (scores
   fitted on one half, thresholds ranked on the other).
2. **Estimation.** Draw the remaining samples afresh and count S under each
   input.  One-sided Clopper–Pearson bounds P1_lo (for x1) and P0_hi (for x0),
   each at level ``sqrt(confidence)``, hold jointly with probability
   ``confidence`` because the two sample sets are independent.
3. **Bound.** ``ε >= max(ln((P1_lo − δ)/P0_hi), ln((1 − P0_hi − δ)/(1 − P1_lo)))``:
   S in the direction x1 over x0 and its complement in the direction x0 over x1.
   Both use the same two bounds, so no correction is needed across directions,
   and none across candidate events, because S is fixed before the estimation
   samples exist.

Guarantee: for any mechanism that satisfies the claim, ``violation`` is True with
probability at most ``1 - confidence`` (the false-flag rate), whatever the
mechanism and output type.  :func:`secquant.audit.pairs.audit_pairs` keeps this
guarantee over a search of several pairs (Bonferroni, or selection of the pair on
selection data).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.estimators import (
    check_confidence,
    check_delta,
    epsilon_from_probabilities,
    epsilon_lower_bound_from_counts,
    joint_alpha,
)
from secquant.audit.events import CandidateEvent, select_event
from secquant.audit.outputs import OutputKind, as_outputs, infer_kind
from secquant.audit.result import AuditResult, DirectionBound
from secquant.errors import ConfigError

__all__ = [
    "AuditSettings",
    "Mechanism",
    "audit_mechanism",
    "check_mechanism",
    "estimate_stage",
    "mechanism_name",
    "select_stage",
]

#: A mechanism: ``(x, rng, n) -> array with n outputs along axis 0``.
Mechanism = Callable[[Any, np.random.Generator, int], Any]

MIN_SAMPLES = 1000
_BATCH_CELLS = 1 << 23  # cap on batch_size · output size while estimating (64 MiB of float64)


@dataclass(frozen=True)
class AuditSettings:
    """Validated settings of one audit.

    Attributes:
        epsilon: Claimed ε in nats, finite and >= 0.
        delta: Claimed δ in [0, 1).
        samples: Draws per input in total, at least 1000.
        confidence: Confidence of the bound, in (0, 1).
        selection_fraction: Share of ``samples`` used to choose the event, in (0, 1).
        batch_size: Largest number of outputs requested from the mechanism at once
            while estimating (lowered automatically for wide outputs).  The
            selection draws are held in memory: ``selection_samples × output size``.
    """

    epsilon: float
    delta: float = 0.0
    samples: int = 1_000_000
    confidence: float = 0.95
    selection_fraction: float = 0.2
    batch_size: int = 1 << 18

    def __post_init__(self) -> None:
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
            raise ConfigError(f"epsilon must be a number, got {eps!r}")
        if not math.isfinite(float(eps)) or float(eps) < 0:
            raise ConfigError(f"epsilon must be finite and >= 0 (the claimed ε in nats), got {eps}")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", check_delta(self.delta))
        object.__setattr__(self, "confidence", check_confidence(self.confidence))
        if isinstance(self.samples, bool) or not isinstance(self.samples, (int, np.integer)):
            raise ConfigError(f"samples must be an int, got {self.samples!r}")
        if int(self.samples) < MIN_SAMPLES:
            raise ConfigError(
                f"samples={self.samples} is too small to bound ε; use at least {MIN_SAMPLES} draws per input "
                "(10^5–10^6 for useful bounds)"
            )
        object.__setattr__(self, "samples", int(self.samples))
        frac = float(self.selection_fraction)
        if not 0.0 < frac < 1.0:
            raise ConfigError(f"selection_fraction must lie in (0, 1), got {frac}")
        if isinstance(self.batch_size, bool) or int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be a positive int, got {self.batch_size!r}")
        object.__setattr__(self, "batch_size", int(self.batch_size))

    @property
    def selection_samples(self) -> int:
        """Draws per input used to choose the event."""
        return max(2, int(round(self.samples * self.selection_fraction)))

    @property
    def estimation_samples(self) -> int:
        """Fresh draws per input used to estimate the event's probabilities."""
        return self.samples - self.selection_samples


def check_mechanism(mechanism: Any) -> None:
    if not callable(mechanism):
        raise ConfigError(
            f"mechanism must be callable as mechanism(x, rng, n), got {type(mechanism).__name__}"
        )


def mechanism_name(mechanism: Any, name: str | None) -> str:
    if name:
        return name
    for attr in ("name", "__name__"):
        value = getattr(mechanism, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(mechanism).__name__


def _draw(mechanism: Mechanism, x: Any, rng: np.random.Generator, n: int) -> NDArray[Any]:
    return as_outputs(mechanism(x, rng, n), n)


def _count(
    mechanism: Mechanism, x: Any, event: CandidateEvent, n: int, rng: np.random.Generator, batch: int
) -> int:
    total = 0
    done = 0
    while done < n:
        size = min(batch, n - done)
        total += int(np.count_nonzero(event.contains(_draw(mechanism, x, rng, size))))
        done += size
    return total


@dataclass(frozen=True)
class _Selection:
    kind: OutputKind
    event: CandidateEvent
    row_size: int


def select_stage(
    mechanism: Mechanism, x0: Any, x1: Any, settings: AuditSettings, seeds: list[np.random.SeedSequence]
) -> _Selection:
    m = settings.selection_samples
    out0 = _draw(mechanism, x0, np.random.default_rng(seeds[0]), m)
    out1 = _draw(mechanism, x1, np.random.default_rng(seeds[1]), m)
    if out0.shape[1:] != out1.shape[1:]:
        raise ConfigError(f"outputs for x0 and x1 differ in shape: {out0.shape[1:]} vs {out1.shape[1:]}")
    kind = infer_kind(out0, out1)
    alpha = joint_alpha(settings.confidence, 2)
    event = select_event(
        kind, out0, out1, n_estimate=settings.estimation_samples, delta=settings.delta,
        alpha=alpha, rng=np.random.default_rng(seeds[2]),
    )
    return _Selection(kind, event, max(1, int(np.prod(out0.shape[1:]))))


def estimate_stage(
    mechanism: Mechanism,
    x0: Any,
    x1: Any,
    settings: AuditSettings,
    selection: _Selection,
    seeds: list[np.random.SeedSequence],
    *,
    seed: int | None,
    name: str,
    started: float,
) -> AuditResult:
    n = settings.estimation_samples
    event = selection.event
    batch = min(settings.batch_size, max(1024, _BATCH_CELLS // selection.row_size))
    k0 = _count(mechanism, x0, event, n, np.random.default_rng(seeds[3]), batch)
    k1 = _count(mechanism, x1, event, n, np.random.default_rng(seeds[4]), batch)
    bound = epsilon_lower_bound_from_counts(k1, n, k0, n, settings.delta, settings.confidence)
    forward = float(epsilon_from_probabilities(bound.p1_lower, bound.p0_upper, settings.delta))
    backward = float(epsilon_from_probabilities(1.0 - bound.p0_upper, 1.0 - bound.p1_lower, settings.delta))
    return AuditResult(
        epsilon_lower_bound=bound.epsilon,
        violation=bound.epsilon > settings.epsilon,
        claimed_epsilon=settings.epsilon,
        claimed_delta=settings.delta,
        confidence=settings.confidence,
        event=event.describe(),
        bound=bound,
        directions=(
            DirectionBound("x1 over x0", event.describe(), forward),
            DirectionBound("x0 over x1", event.describe_complement(), backward),
        ),
        output_kind=selection.kind.value,
        samples=settings.samples,
        selection_samples=settings.selection_samples,
        estimation_samples=n,
        selection_epsilon=event.selection_epsilon,
        seed=seed,
        seconds=time.perf_counter() - started,
        x0=_short_repr(x0),
        x1=_short_repr(x1),
        mechanism=name,
    )


def _short_repr(x: Any, limit: int = 80) -> str:
    text = np.array2string(np.asarray(x), threshold=20) if isinstance(x, (np.ndarray, list, tuple)) else repr(x)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def audit_mechanism(
    mechanism: Mechanism,
    x0: Any,
    x1: Any,
    epsilon: float,
    delta: float = 0.0,
    samples: int = 1_000_000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    selection_fraction: float = 0.2,
    batch_size: int = 1 << 18,
    name: str | None = None,
) -> AuditResult:
    """Lower-bound the ε of ``mechanism`` on one neighbouring pair and test an (ε, δ) claim.

    Args:
        mechanism: Callable ``(x, rng, n) -> array`` with ``n`` outputs along axis 0
            (scalars, integer categories, bit patterns, strings or real vectors).
            It must draw all randomness from ``rng``.
        x0: First input of the neighbouring pair (passed to ``mechanism`` unchanged).
        x1: Second input.
        epsilon: Claimed ε in nats, finite and >= 0.
        delta: Claimed δ in [0, 1); it enters the bound as ``ln((P1 − δ)/P0)``.
        samples: Draws per input in total (selection plus estimation), >= 1000.
        confidence: Probability in (0, 1) that the returned bound is valid; a
            correct claim is flagged with probability at most ``1 - confidence``.
        seed: Seed of every random draw (``None`` for fresh OS entropy).
        selection_fraction: Share of ``samples`` spent on choosing the event, in (0, 1).
        batch_size: Largest ``n`` passed to ``mechanism`` while estimating.
        name: Name shown in the result (defaults to the mechanism's ``name`` or type).

    Returns:
        An :class:`AuditResult`.

    Raises:
        ConfigError: non-callable mechanism, wrong output count or shape,
            confidence outside (0, 1), negative or non-finite ε, δ outside [0, 1),
            too few samples.
    """
    started = time.perf_counter()
    check_mechanism(mechanism)
    settings = AuditSettings(epsilon, delta, samples, confidence, selection_fraction, batch_size)
    seeds = np.random.SeedSequence(seed).spawn(5)
    selection = select_stage(mechanism, x0, x1, settings, seeds)
    return estimate_stage(
        mechanism, x0, x1, settings, selection, seeds, seed=seed, name=mechanism_name(mechanism, name), started=started
    )
