"""Results of mechanism audits: readable summaries and JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from secquant.artifact import write_bytes_atomic
from secquant.audit.estimators import EpsilonBound

__all__ = ["AuditResult", "DirectionBound", "PairSearchResult", "json_safe", "write_text_atomic"]


def json_safe(value: Any) -> Any:
    """Return ``value`` with non-finite floats replaced by ``"inf"``/``"-inf"``/``"nan"`` (standard JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`secquant.artifact.write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


@dataclass(frozen=True)
class DirectionBound:
    """The ε lower bound in one direction.

    Attributes:
        direction: ``"x1 over x0"`` (ln (P[M(x1) ∈ S] − δ)/P[M(x0) ∈ S]) or ``"x0 over x1"``.
        event: Description of the event used in this direction.
        epsilon: Lower bound on ε in nats (jointly valid with the other direction at the confidence).
    """

    direction: str
    event: str
    epsilon: float


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`secquant.audit.audit_mechanism`.

    Attributes:
        epsilon_lower_bound: ε (nats) that the mechanism provably needs, valid with
            probability at least ``confidence``; 0 when there is no evidence.
        violation: ``epsilon_lower_bound > claimed_epsilon``.
        claimed_epsilon: The ε of the claim.
        claimed_delta: The δ of the claim (enters the bound).
        confidence: Confidence of the bound (covering event choice, both directions).
        event: The witness event S, chosen on selection samples only.
        bound: Counts, probabilities and Clopper–Pearson bounds for S on the estimation samples.
        directions: Both directions (S for x1 over x0, the complement of S for x0 over x1).
        output_kind: ``"scalar"``, ``"categorical"`` or ``"vector"``.
        samples: Draws per input in total.
        selection_samples: Draws per input used to choose S.
        estimation_samples: Fresh draws per input used to estimate its probabilities.
        selection_epsilon: The conservative projection that ranked S (not a bound).
        seed: Seed of the audit.
        seconds: Wall time in seconds.
        x0: ``repr`` of the first input; x1: of the second.
        mechanism: Name of the mechanism.
    """

    epsilon_lower_bound: float
    violation: bool
    claimed_epsilon: float
    claimed_delta: float
    confidence: float
    event: str
    bound: EpsilonBound
    directions: tuple[DirectionBound, DirectionBound]
    output_kind: str
    samples: int
    selection_samples: int
    estimation_samples: int
    selection_epsilon: float
    seed: int | None
    seconds: float
    x0: str
    x1: str
    mechanism: str = "mechanism"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats as the strings ``"inf"``/``"-inf"``)."""
        data = {
            "type": "secquant.audit.mechanism",
            "version": 1,
            "mechanism": self.mechanism,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "violation": self.violation,
            "claimed_epsilon": self.claimed_epsilon,
            "claimed_delta": self.claimed_delta,
            "confidence": self.confidence,
            "event": self.event,
            "bound": self.bound.to_dict(),
            "directions": [vars(d).copy() for d in self.directions],
            "output_kind": self.output_kind,
            "samples": self.samples,
            "selection_samples": self.selection_samples,
            "estimation_samples": self.estimation_samples,
            "selection_epsilon": self.selection_epsilon,
            "seed": self.seed,
            "seconds": self.seconds,
            "x0": self.x0,
            "x1": self.x1,
        }
        return json_safe(data)

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Serialize to JSON; with ``path``, also write it atomically (temporary file + ``os.replace``)."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=True)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    def __str__(self) -> str:
        b = self.bound
        verdict = "VIOLATION" if self.violation else "no violation"
        lines = [
            f"DP audit of {self.mechanism}: {verdict}",
            f"  claim            (ε={self.claimed_epsilon:.4g}, δ={self.claimed_delta:.3g})",
            f"  ε lower bound    {self.epsilon_lower_bound:.4f}  at confidence {self.confidence:.4g}",
            f"  inputs           x0={self.x0}  x1={self.x1}",
            f"  event S          {self.event}   ({self.output_kind} outputs)",
            f"  P[M(x1) ∈ S]     {b.p1:.6g}  ≥ {b.p1_lower:.6g}   ({b.count1}/{b.samples1})",
            f"  P[M(x0) ∈ S]     {b.p0:.6g}  ≤ {b.p0_upper:.6g}   ({b.count0}/{b.samples0})",
        ]
        for d in self.directions:
            lines.append(f"  {d.direction:<16} ε ≥ {d.epsilon:.4f}  via {d.event}")
        lines.append(
            f"  samples          {self.samples}/input: {self.selection_samples} to choose S, "
            f"{self.estimation_samples} fresh to estimate; {self.seconds:.2f} s"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class PairSearchResult:
    """Outcome of :func:`secquant.audit.audit_pairs` over several neighbouring pairs.

    Attributes:
        best: The audit with the largest ε lower bound (valid for the whole search at ``confidence``).
        results: Every estimated audit, in pair order.
        strategy: ``"bonferroni"`` or ``"select"``.
        confidence: Confidence of ``best.epsilon_lower_bound`` for the whole search.
        per_pair_confidence: Confidence each estimated audit was run at.
        pairs: Number of pairs searched.
        seconds: Wall time in seconds.
    """

    best: AuditResult
    results: tuple[AuditResult, ...]
    strategy: str
    confidence: float
    per_pair_confidence: float
    pairs: int
    seconds: float
    selection_epsilons: tuple[float, ...] = field(default=())

    @property
    def epsilon_lower_bound(self) -> float:
        """The search's ε lower bound (nats), valid at ``confidence``."""
        return self.best.epsilon_lower_bound

    @property
    def violation(self) -> bool:
        """Whether the search proves the claim wrong at ``confidence``."""
        return self.best.violation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return json_safe(
            {
                "type": "secquant.audit.pair_search",
                "version": 1,
                "epsilon_lower_bound": self.epsilon_lower_bound,
                "violation": self.violation,
                "strategy": self.strategy,
                "confidence": self.confidence,
                "per_pair_confidence": self.per_pair_confidence,
                "pairs": self.pairs,
                "seconds": self.seconds,
                "selection_epsilons": list(self.selection_epsilons),
                "best": self.best.to_dict(),
                "results": [r.to_dict() for r in self.results],
            }
        )

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Serialize to JSON; with ``path``, also write it atomically."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=True)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    def __str__(self) -> str:
        head = (
            f"search over {self.pairs} neighbouring pair(s), {self.strategy} correction: "
            f"ε ≥ {self.epsilon_lower_bound:.4f} at confidence {self.confidence:.4g} "
            f"(each estimated pair at {self.per_pair_confidence:.6g})"
        )
        return head + "\n" + str(self.best)
