"""Run an extraction audit: for each release policy, attack and query budget, steal and measure.

For every (policy, attack, budget) the attack gets a fresh
:class:`~secquant.audit.extraction.oracle.LocalOracle` and exactly ``budget``
queries, ``trials`` times with different seeds.  Metrics, on held-out data:

* **fidelity**: fraction of held-out inputs where the surrogate's top class
  equals the victim's (the victim as ``forward_int`` computes it, noiseless);
* **accuracy**: the surrogate's accuracy on the held-out labels;
* **parameter error** (equation solving, when the victim is affine in its
  input integers): ``||θ̂ - θ|| / ||θ||`` over ``[W | b]`` in logits, θ fitted
  noiselessly by the auditor;
* per (policy, attack): the fewest tested queries reaching 90 % and 99 %
  fidelity, and the **budget**: the largest tested query count whose fidelity,
  and every smaller one's, stays below ``target_fidelity`` (a per-key query
  budget to set).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.extraction.attacks import (
    AttackKind,
    box_inputs,
    equation_solving,
    fit_affine,
    learning_attack,
)
from secquant.audit.extraction.oracle import LocalOracle
from secquant.audit.extraction.victims import Victim
from secquant.dp.release import (
    RELEASE_POLICY_TYPES,
    DiscreteGaussianLogits,
    FullLogits,
    ReleaseForm,
    ReleasePolicy,
    RoundedLogits,
)
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["ExtractionAudit", "ExtractionAuditConfig", "ExtractionRow", "run_extraction_audit"]


def _default_policies() -> tuple[ReleasePolicy, ...]:
    return (FullLogits(), RoundedLogits(0), DiscreteGaussianLogits(0.0625))


@dataclass(frozen=True)
class ExtractionAuditConfig:
    """What to measure.

    Attributes:
        policies: Release policies (in logits), distinct labels.
        attacks: :class:`AttackKind` values; equation solving is skipped for policies releasing no logits.
        budgets: Query counts to test, increasing, >= 1.
        target_fidelity: The budget keeps fidelity below this, in (0, 1].
        trials: Repetitions with fresh seeds per cell, >= 1 (fidelity is averaged).
        hidden: Hidden width of the learning attack's surrogate, >= 1.
        steps: Optimizer steps of the learning attack, >= 1.
        seed: Seeds everything, >= 0.

    Raises:
        ConfigError: a field out of range.
    """

    policies: tuple[ReleasePolicy, ...] = field(default_factory=_default_policies)
    attacks: tuple[AttackKind, ...] = (AttackKind.EQUATION, AttackKind.LEARNING)
    budgets: tuple[int, ...] = (8, 16, 31, 64, 128, 256)
    target_fidelity: float = 0.9
    trials: int = 1
    hidden: int = 64
    steps: int = 1500
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.policies or not all(isinstance(p, RELEASE_POLICY_TYPES) for p in self.policies):
            raise ConfigError(f"policies must be secquant.dp.release policies (e.g. parse_policy('full')), got {self.policies!r}")
        labels = [p.label for p in self.policies]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"release policies repeat: {labels}")
        object.__setattr__(self, "attacks", tuple(coerce_enum(a, AttackKind, "attack") for a in self.attacks))
        if not self.attacks:
            raise ConfigError("give at least one attack")
        b = list(self.budgets)
        if not b or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in b) or b != sorted(set(b)):
            raise ConfigError(f"budgets must be increasing ints >= 1, got {self.budgets!r}")
        object.__setattr__(self, "budgets", tuple(int(v) for v in b))
        if not 0 < float(self.target_fidelity) <= 1:
            raise ConfigError(f"target_fidelity must lie in (0, 1], got {self.target_fidelity}")
        for name in ("trials", "hidden", "steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"policies": [p.to_json() | {"label": p.label} for p in self.policies],
                "attacks": [a.value for a in self.attacks], "budgets": list(self.budgets),
                "target_fidelity": self.target_fidelity, "trials": self.trials, "hidden": self.hidden,
                "steps": self.steps, "seed": self.seed}


@dataclass(frozen=True)
class ExtractionRow:
    """One (policy, attack, budget) cell, averaged over trials.

    Attributes:
        policy, attack: Labels.
        queries: Queries the attacker made (the budget).
        fidelity, fidelity_min: Mean and worst agreement with the victim on held-out data, in [0, 1].
        accuracy: Mean surrogate accuracy on held-out labels.
        parameter_error: Mean relative parameter error (equation solving on an affine victim), else None.
    """

    policy: str
    attack: str
    queries: int
    fidelity: float
    fidelity_min: float
    accuracy: float
    parameter_error: float | None


def _first_reaching(rows: list[ExtractionRow], level: float) -> int | None:
    return next((r.queries for r in rows if r.fidelity >= level), None)


def _budget_below(rows: list[ExtractionRow], target: float) -> tuple[int, bool]:
    """(largest budget with every fidelity so far below target, whether the target was reached at all)."""
    budget = 0
    for r in rows:
        if r.fidelity >= target:
            return budget, True
        budget = r.queries
    return budget, False


@dataclass(frozen=True, eq=False)
class ExtractionAudit:
    """Result of :func:`run_extraction_audit`.

    Attributes:
        config: The configuration as a dict.
        victim: Description, accuracy, features, classes, whether it is affine in its input integers.
        rows: One per (policy, attack, budget) measured.
        epsilon: Per-query (ε, δ) of each noisy policy for all the model's outputs at once, by label.
        notes: Skipped cells and caveats.
        seconds: Wall time.
    """

    config: dict[str, Any]
    victim: dict[str, Any]
    rows: tuple[ExtractionRow, ...]
    epsilon: dict[str, tuple[float, float]]
    notes: tuple[str, ...]
    seconds: float

    def cells(self, policy: str, attack: str) -> list[ExtractionRow]:
        """Rows of one (policy, attack), by increasing budget."""
        return sorted((r for r in self.rows if (r.policy, r.attack) == (policy, attack)), key=lambda r: r.queries)

    def row(self, policy: str, attack: str, queries: int) -> ExtractionRow:
        """The row of one cell.

        Raises:
            ConfigError: no such row.
        """
        for r in self.rows:
            if (r.policy, r.attack, r.queries) == (policy, attack, queries):
                return r
        raise ConfigError(f"no row for policy={policy!r}, attack={attack!r}, queries={queries}")

    def summary(self) -> list[dict[str, Any]]:
        """Per (policy, attack): queries to 90 % / 99 % fidelity, and the budget below the target."""
        target = float(self.config["target_fidelity"])
        out = []
        for policy in [p["label"] for p in self.config["policies"]]:
            for attack in self.config["attacks"]:
                rows = self.cells(policy, attack)
                if rows:
                    budget, reached = _budget_below(rows, target)
                    out.append({"policy": policy, "attack": attack, "queries_to_90": _first_reaching(rows, 0.9),
                                "queries_to_99": _first_reaching(rows, 0.99), "budget": budget,
                                "target_reached": reached, "best_fidelity": max(r.fidelity for r in rows)})
        return out

    def recommended_budget(self, policy: str) -> tuple[int, bool]:
        """The budget that keeps every attack below the target under ``policy``: (queries, reached by some attack).

        Raises:
            ConfigError: the policy was not measured.
        """
        cells = [s for s in self.summary() if s["policy"] == policy]
        if not cells:
            raise ConfigError(f"policy {policy!r} was not measured")
        return min(s["budget"] for s in cells), any(s["target_reached"] for s in cells)

    def table(self) -> str:
        """Plain-text table of every row."""
        lines = [f"{'policy':<16}{'attack':<10}{'queries':>8}{'fidelity':>10}{'min':>7}{'accuracy':>10}{'param err':>11}"]
        for r in self.rows:
            err = "-" if r.parameter_error is None else f"{r.parameter_error:.2e}"
            lines.append(f"{r.policy:<16}{r.attack:<10}{r.queries:>8}{r.fidelity:>10.4f}{r.fidelity_min:>7.3f}"
                         f"{r.accuracy:>10.4f}{err:>11}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"config": self.config, "victim": self.victim, "rows": [vars(r) for r in self.rows],
                "summary": self.summary(),
                "epsilon_per_query": {k: {"epsilon": e, "delta": d} for k, (e, d) in self.epsilon.items()},
                "notes": list(self.notes), "seconds": self.seconds}


def true_affine(qm: Any, seed: int = 0) -> tuple[NDArray[np.float64] | None, NDArray[np.float64]]:
    """The auditor's noiseless ``[W | b]`` of an affine victim (None if it is not affine), and its residual.

    Fits ``4 (d + 1)`` uniform points and checks the fit on as many fresh ones.
    """
    iface = qm.interface()
    d = int(np.prod(iface.input_shape))
    rng = np.random.default_rng([seed, 0xAF])
    x = box_inputs(iface, 8 * (d + 1), rng)
    u = np.asarray(iface.quantize_input(x)).reshape(len(x), -1)
    z = np.asarray(iface.dequantize_output(qm.forward_int(u)), dtype=np.float64).reshape(len(x), -1)
    half = 4 * (d + 1)
    w, b = fit_affine(u[:half], z[:half])
    residual = np.abs(u[half:] @ w.T + b - z[half:])
    affine = float(residual.max()) <= 1e-9 * max(1.0, float(np.abs(z).max()))
    return (np.concatenate([w, b[:, None]], axis=1) if affine else None), residual


def _one_cell(victim: Victim, policy: ReleasePolicy, attack: AttackKind, queries: int, trial: int,
              cfg: ExtractionAuditConfig, truth: NDArray[np.float64] | None,
              labels: NDArray[np.int64]) -> tuple[float, float, float | None]:
    oracle = LocalOracle(victim.qm, policy, seed=cfg.seed * 1000 + trial)
    if attack is AttackKind.EQUATION:
        s: Any = equation_solving(oracle, queries, np.random.default_rng([cfg.seed, trial, queries]))
        err = None if truth is None else float(np.linalg.norm(s.parameters - truth) / np.linalg.norm(truth))
    else:
        pool = victim.pool[np.random.default_rng([cfg.seed, trial, 1]).permutation(len(victim.pool))]
        s = learning_attack(oracle, pool, queries, hidden=cfg.hidden, steps=cfg.steps, seed=cfg.seed * 1000 + trial)
        err = None
    if oracle.queries != queries:
        raise RuntimeError(f"attack made {oracle.queries} queries, budget {queries}")  # pragma: no cover
    pred = np.argmax(s.scores(victim.x_heldout), axis=1)
    return float(np.mean(pred == labels)), float(np.mean(pred == victim.y_heldout)), err


def run_extraction_audit(victim: Victim, config: ExtractionAuditConfig | None = None,
                         progress: Any = None) -> ExtractionAudit:
    """Attack ``victim`` under every policy, attack and budget of ``config``.

    Args:
        victim: The model and data (:func:`~secquant.audit.extraction.victims.train_victim`).
        config: What to measure; ``ExtractionAuditConfig()`` when None.
        progress: Optional callable taking one status line per finished cell.

    Raises:
        ConfigError: invalid configuration.
    """
    cfg = config or ExtractionAuditConfig()
    start = time.perf_counter()
    qm, iface = victim.qm, victim.qm.interface()
    labels = np.argmax(np.asarray(qm.forward_int(iface.quantize_input(victim.x_heldout))).reshape(len(victim.x_heldout), -1), axis=1)
    truth, residual = true_affine(qm, cfg.seed)
    classes = int(np.prod(iface.output_shape))
    rows, notes = [], []
    if truth is None and AttackKind.EQUATION in cfg.attacks:
        notes.append(f"the victim is not affine in its input integers (fit residual up to {residual.max():.3g} logits): "
                     "equation solving finds its best linear approximation; no parameter error")
    for policy in cfg.policies:
        for attack in cfg.attacks:
            if attack is AttackKind.EQUATION and policy.form is not ReleaseForm.LOGITS:
                notes.append(f"{policy.label}: releases {policy.form.value}, no equations to solve; equation attack skipped")
                continue
            for q in cfg.budgets:
                if attack is AttackKind.LEARNING and q > len(victim.pool):
                    notes.append(f"{policy.label}/learning: {q} queries exceed the {len(victim.pool)}-input pool; skipped")
                    continue
                cells = [_one_cell(victim, policy, attack, q, t, cfg, truth, labels) for t in range(cfg.trials)]
                fid, acc, err = zip(*cells)
                rows.append(ExtractionRow(policy.label, attack.value, q, float(np.mean(fid)), float(np.min(fid)),
                                          float(np.mean(acc)), None if err[0] is None else float(np.mean(err))))
                if progress is not None:
                    progress(f"{policy.label}/{attack.value}/{q}: fidelity {rows[-1].fidelity:.3f}")
    eps = {p.label: p.privacy(classes) for p in cfg.policies if isinstance(p, DiscreteGaussianLogits)}
    info = {"description": victim.description, "features": int(np.prod(iface.input_shape)), "classes": classes,
            "accuracy": float(np.mean(labels == victim.y_heldout)), "affine": truth is not None,
            "heldout": len(victim.y_heldout), "pool": len(victim.pool)}
    return ExtractionAudit(cfg.to_dict(), info, tuple(rows), eps, tuple(notes), time.perf_counter() - start)
