"""Audit several neighbouring pairs with one confidence statement for the whole search.

:func:`audit_pairs` runs :func:`~secquant.audit.auditor.audit_mechanism`'s
procedure over a list (or generator) of pairs and keeps its false-flag
guarantee for the search as a whole, by one of two :class:`PairStrategy`:
a Bonferroni correction, or selection of the pair on selection data only.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from secquant.audit.auditor import (
    AuditSettings,
    Mechanism,
    audit_mechanism,
    check_mechanism,
    estimate_stage,
    mechanism_name,
    select_stage,
)
from secquant.audit.result import PairSearchResult
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["PairStrategy", "audit_pairs"]


class PairStrategy(enum.Enum):
    """How :func:`audit_pairs` keeps its confidence over many pairs."""

    #: Audit every pair at confidence ``1 - (1 - confidence)/m``; report the best.
    BONFERRONI = "bonferroni"
    #: Run only the selection stage on every pair, pick the most promising pair
    #: on selection data, and estimate that pair alone at full confidence.
    SELECT = "select"


def audit_pairs(
    mechanism: Mechanism,
    pairs: Iterable[tuple[Any, Any]],
    epsilon: float,
    delta: float = 0.0,
    samples: int = 1_000_000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    strategy: PairStrategy | str = PairStrategy.BONFERRONI,
    max_pairs: int = 64,
    selection_fraction: float = 0.2,
    batch_size: int = 1 << 18,
    name: str | None = None,
) -> PairSearchResult:
    """Audit several neighbouring pairs with one confidence statement for the whole search.

    ``pairs`` may be a list or a generator; at most ``max_pairs`` are taken (a
    longer iterable is refused rather than truncated, so the correction is
    always for the pairs actually searched).

    * ``BONFERRONI``: each of the m pairs is audited at confidence
      ``1 - (1 - confidence)/m`` with its own samples; the best bound is valid
      at ``confidence`` (union bound).
    * ``SELECT``: every pair gets only the selection stage; the pair whose event
      promises the largest bound is then estimated on fresh samples at full
      ``confidence``.  No correction is needed because the choice of pair is made
      before the estimation samples exist.  Costs ``m·selection + estimation``
      draws per input instead of ``m·samples``.

    Args:
        mechanism: As for :func:`audit_mechanism`.
        pairs: Iterable of ``(x0, x1)`` neighbouring pairs.
        epsilon: Claimed ε in nats.
        delta: Claimed δ in [0, 1).
        samples: Draws per input for each audited pair, >= 1000.
        confidence: Confidence of the whole search, in (0, 1).
        seed: Seed (each pair gets an independent child stream).
        strategy: :class:`PairStrategy` or its lower-case value.
        max_pairs: Largest number of pairs accepted, >= 1.
        selection_fraction: As for :func:`audit_mechanism`.
        batch_size: As for :func:`audit_mechanism`.
        name: Name shown in the results.

    Returns:
        A :class:`PairSearchResult`.

    Raises:
        ConfigError: no pairs, more than ``max_pairs`` pairs, a pair that is not a
            2-tuple, or any error of :func:`audit_mechanism`.
    """
    started = time.perf_counter()
    check_mechanism(mechanism)
    strategy = coerce_enum(strategy, PairStrategy, "strategy")
    settings = AuditSettings(epsilon, delta, samples, confidence, selection_fraction, batch_size)
    taken = _take_pairs(pairs, max_pairs)
    label = mechanism_name(mechanism, name)
    children = np.random.SeedSequence(seed).spawn(len(taken))
    if strategy is PairStrategy.BONFERRONI:
        return _bonferroni(mechanism, taken, settings, seed, children, label, started)
    return _select_then_estimate(mechanism, taken, settings, seed, children, label, started)


def _take_pairs(pairs: Iterable[tuple[Any, Any]], max_pairs: int) -> list[tuple[Any, Any]]:
    """At most ``max_pairs`` 2-tuples from ``pairs`` (a longer iterable is refused, not truncated).

    Raises:
        ConfigError: ``max_pairs`` < 1, no pairs, too many pairs, or a pair that is not a 2-tuple.
    """
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1:
        raise ConfigError(f"max_pairs must be a positive int, got {max_pairs!r}")
    taken = list(itertools.islice(iter(pairs), max_pairs + 1))
    if not taken:
        raise ConfigError("pairs is empty; give at least one (x0, x1) neighbouring pair")
    if len(taken) > max_pairs:
        raise ConfigError(f"more than max_pairs={max_pairs} pairs; pass a larger max_pairs or fewer pairs")
    for i, pair in enumerate(taken):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"pair {i} must be a 2-tuple (x0, x1), got {type(pair).__name__}")
    return taken


def _bonferroni(mechanism: Mechanism, taken: list[tuple[Any, Any]], settings: AuditSettings, seed: int | None,
                children: list[np.random.SeedSequence], label: str, started: float) -> PairSearchResult:
    """Audit every pair at ``1 - (1 - confidence)/m`` with its own samples; the best bound holds at ``confidence``."""
    m = len(taken)
    per_pair = 1.0 - (1.0 - settings.confidence) / m
    results = tuple(
        audit_mechanism(
            mechanism, x0, x1, settings.epsilon, settings.delta, settings.samples, per_pair,
            seed=None if seed is None else int(children[i].generate_state(1)[0]),
            selection_fraction=settings.selection_fraction, batch_size=settings.batch_size, name=label,
        )
        for i, (x0, x1) in enumerate(taken)
    )
    best = max(results, key=lambda r: r.epsilon_lower_bound)
    return PairSearchResult(
        best, results, PairStrategy.BONFERRONI.value, settings.confidence, per_pair, m,
        time.perf_counter() - started, tuple(r.selection_epsilon for r in results),
    )


def _select_then_estimate(mechanism: Mechanism, taken: list[tuple[Any, Any]], settings: AuditSettings,
                          seed: int | None, children: list[np.random.SeedSequence], label: str,
                          started: float) -> PairSearchResult:
    """Run only the selection stage on every pair, then estimate the most promising one at full confidence."""
    seeds = [child.spawn(5) for child in children]
    selections = [select_stage(mechanism, x0, x1, settings, seeds[i]) for i, (x0, x1) in enumerate(taken)]
    scores = tuple(s.event.selection_epsilon for s in selections)
    i = int(np.argmax(scores))
    best = estimate_stage(
        mechanism, taken[i][0], taken[i][1], settings, selections[i], seeds[i],
        seed=seed, name=label, started=time.perf_counter(),
    )
    return PairSearchResult(
        best, (best,), PairStrategy.SELECT.value, settings.confidence, settings.confidence, len(taken),
        time.perf_counter() - started, scores,
    )
