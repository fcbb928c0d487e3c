"""Run a membership-inference audit end to end: train, quantize, release, attack, measure.

Setup (Carlini et al. 2022): ``shadows + 1`` models, each trained on a random
half of a population (every row included independently with probability
1/2).  The first ``evaluated`` models are attacked in turn, each with all
the others as its shadows; their scores are pooled for AUC, TPR at low FPR and
the ε bound.  The first model is also audited with the one-run method of
Steinke, Nasr and Jagielski (its rows are canaries included at random).

Every target (float, ``quantize_model`` at each bit-width, DP-SGD) is scored
by the same trained models, and shadows are passed through the same target
and release policy as the attacked model (the attacker knows the pipeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.membership.attacks import AttackKind, confidence_scores, lira_scores, loss_scores
from secquant.audit.membership.config import CanarySpec, MembershipAuditConfig
from secquant.audit.membership.metrics import attack_metrics
from secquant.audit.membership.one_run import one_run_audit
from secquant.audit.membership.policies import Features, ReleasePolicy, features
from secquant.audit.membership.result import AuditRow, MembershipAudit
from secquant.audit.membership.shadows import ModelJob, ModelOutputs, run_jobs
from secquant.audit.membership.targets import Family, Target
from secquant.data import DatasetName
from secquant.errors import ConfigError

__all__ = ["AuditRow", "CanarySpec", "MembershipAudit", "MembershipAuditConfig", "run_membership_audit"]


@dataclass(frozen=True, eq=False)
class _Population:
    """The audited rows and who trains on them.

    Attributes:
        x, y: Population inputs ``(N, features)`` and true labels ``(N,)``.
        y_train: Training labels (canaries may be mislabeled).
        n_classes: Number of classes.
        included: ``(models, N)``: row i is in model j's training set.
        counts: ``(models, N)``: copies of each row in each training set.
        canary: ``(N,)``: canary rows.
    """

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    y_train: NDArray[np.int64]
    n_classes: int
    included: NDArray[np.bool_]
    counts: NDArray[np.int64]
    canary: NDArray[np.bool_]


def _population(cfg: MembershipAuditConfig) -> tuple[NDArray[np.float32], NDArray[np.int64], int]:
    from secquant.data import load_dataset

    d = load_dataset(cfg.dataset, seed=cfg.seed)
    x = np.concatenate([d.x_train, d.x_test]).reshape(-1, d.n_features)
    y = np.concatenate([d.y_train, d.y_test])
    rng = np.random.default_rng([cfg.seed, 1])
    order = rng.permutation(len(y))
    if cfg.population is not None:
        if cfg.population > len(y):
            raise ConfigError(f"population={cfg.population} exceeds the {len(y)} rows of {DatasetName(cfg.dataset).value}")
        order = order[: cfg.population]
    return x[order], y[order], d.n_classes


def _memberships(cfg: MembershipAuditConfig) -> _Population:
    """Draw each model's training set (each row with probability 1/2) and plant the canaries."""
    x, y, n_classes = _population(cfg)
    n, models = len(y), cfg.shadows + 1
    rng = np.random.default_rng([cfg.seed, 2])
    included = rng.random((models, n)) < 0.5
    y_train = y.copy()
    repeats = np.ones(n, dtype=np.int64)
    canary = np.zeros(n, dtype=bool)
    if cfg.canaries is not None:
        if cfg.canaries.count > n:
            raise ConfigError(f"{cfg.canaries.count} canaries do not fit a population of {n}")
        canary[: cfg.canaries.count] = True
        repeats[canary] = cfg.canaries.repeats
        if cfg.canaries.mislabel:
            shift = rng.integers(1, n_classes, cfg.canaries.count)
            y_train[canary] = (y[canary] + shift) % n_classes
    counts = included.astype(np.int64) * repeats
    return _Population(x, y, y_train, n_classes, included, counts, canary)


def _train(cfg: MembershipAuditConfig, pop: _Population) -> dict[Family, list[ModelOutputs]]:
    """Train and score every model of every family that has targets; outputs grouped by family."""
    targets, models = cfg.targets(), cfg.shadows + 1
    jobs = []
    for family in Family:
        fam_targets = tuple(t for t in targets if t.family is family)
        offset = 50_000 if family is Family.DPSGD else 0
        if fam_targets:
            jobs += [ModelJob(i, family, pop.counts[i], fam_targets, cfg.seed * 100_003 + i + offset)
                     for i in range(models)]
    outputs = run_jobs(jobs, pop.x, pop.y_train, pop.n_classes, cfg.train, cfg.dp, backend=cfg.backend,
                       n_jobs=cfg.n_jobs, ray_address=cfg.ray_address, progress=cfg.progress)
    by_family: dict[Family, list[ModelOutputs]] = {}
    for out in outputs:
        by_family.setdefault(out.family, []).append(out)
    return by_family


def _describe_target(target: Target, outs: list[ModelOutputs], pop: _Population, models: int,
                     float_acc: float | None) -> tuple[dict[str, Any], list[str]]:
    """Accuracy on members and non-members, failures and accountant ε of one target, with remarks."""
    plain = ~pop.canary
    usable = [o.index for o in outs if target.label in o.logits]
    errors = sorted({o.errors[target.label] for o in outs if target.label in o.errors})
    eps_acct = [o.accountant_epsilon for o in outs if o.accountant_epsilon is not None]
    logits = {o.index: o.logits[target.label] for o in outs if target.label in o.logits}
    rows_in = [pop.included[i] & plain for i in usable]
    rows_out = [~pop.included[i] & plain for i in usable]
    acc_in = [float(np.mean(logits[i][m].argmax(1) == pop.y[m])) for i, m in zip(usable, rows_in)]
    acc_out = [float(np.mean(logits[i][m].argmax(1) == pop.y[m])) for i, m in zip(usable, rows_out)]
    info = {
        "models": len(usable), "failed_models": models - len(usable), "errors": errors,
        "accuracy_members": float(np.mean(acc_in)) if acc_in else None,
        "accuracy_non_members": float(np.mean(acc_out)) if acc_out else None,
        "accountant_epsilon": max(eps_acct) if eps_acct else None,
    }
    notes = []
    if errors:
        notes.append(f"{target.label}: quantize_model failed for {models - len(usable)} of {models} models ({errors[0]})")
    test_acc = float(np.mean(acc_out)) if acc_out else None
    if test_acc is not None and test_acc < 2.0 / pop.n_classes:
        notes.append(f"{target.label}: test accuracy {test_acc:.1%} is near chance ({1 / pop.n_classes:.0%}); "
                     "its low leakage comes with a useless model")
    elif (test_acc is not None and float_acc is not None and target.family is Family.STANDARD
          and test_acc < float_acc - 0.1):
        notes.append(f"{target.label}: test accuracy {test_acc:.1%} vs {float_acc:.1%} in float; "
                     "lower leakage here comes with a much worse model")
    return info, notes


def _features(policy: ReleasePolicy, logits: NDArray[np.float64], y: NDArray[np.int64], rng: np.random.Generator) -> Features:
    return features(policy, np.asarray(logits, dtype=np.float64), y, rng)


def _scores(attack: AttackKind, t: int, feats: list[Features], counts: NDArray[np.int64], usable: list[int]) -> NDArray[np.float64] | None:
    f = feats[t]
    if attack is AttackKind.LOSS:
        return loss_scores(f.loss)
    if attack is AttackKind.CONFIDENCE:
        return confidence_scores(f.phi)
    shadows = [j for j in usable if j != t]
    if len(shadows) < 2:
        return None
    shadow_in = counts[shadows] > 0
    try:
        return lira_scores(f.phi, np.stack([feats[j].phi for j in shadows]), shadow_in,
                           online=attack is AttackKind.LIRA_ONLINE, discrete=f.discrete)
    except ConfigError:
        return None


def _measure(cfg: MembershipAuditConfig, target: Target, policy: ReleasePolicy, prng: np.random.Generator,
             logits: dict[int, NDArray[np.float64]], evaluated: list[int], pop: _Population,
             acct: float | None) -> tuple[list[AuditRow], list[str]]:
    """Every attack on one (target, policy): scores pooled over the evaluated models, plus the one-run audit.

    Each attack's bounds are taken at a Bonferroni-corrected level, so the largest bound over
    the attacks of one (target, policy) is valid at ``cfg.confidence``.
    """
    per_attack = 1.0 - (1.0 - cfg.confidence) / len(cfg.attacks)
    usable = sorted(logits)
    feats: list[Features] = [None] * (cfg.shadows + 1)  # type: ignore[list-item]
    for i in usable:
        feats[i] = _features(policy, logits[i], pop.y_train, prng)
    rows, notes = [], []
    for attack in cfg.attacks:
        scored = [_scores(attack, t, feats, pop.counts, usable) for t in evaluated]
        pooled = [s for s in scored if s is not None]
        if len(pooled) < len(evaluated):
            notes.append(f"{target.label}/{policy.label}/{attack.value}: too few shadow models; skipped")
            continue
        members = [pop.included[t] for t in evaluated]
        metrics = attack_metrics(np.concatenate(pooled), np.concatenate(members), delta=cfg.delta,
                                 confidence=per_attack, seed=cfg.seed)
        sel = pop.canary if cfg.canaries is not None else np.ones(len(pop.y), dtype=bool)
        one = one_run_audit(pooled[0][sel], pop.included[evaluated[0]][sel], delta=cfg.delta, confidence=per_attack)
        rows.append(AuditRow(target.label, policy.label, attack.value, metrics, one, acct))
    return rows, notes


def run_membership_audit(config: MembershipAuditConfig | None = None, **overrides: Any) -> MembershipAudit:
    """Train, quantize, release, attack and measure, as :class:`MembershipAuditConfig` says.

    Args:
        config: The audit; defaults to ``MembershipAuditConfig()``.
        **overrides: Fields replacing those of ``config`` (validated again).

    Returns:
        A :class:`MembershipAudit`; write it with :func:`secquant.audit.membership.report.write_report`.

    Raises:
        ConfigError: invalid configuration or data too small for the requested audit.
    """
    cfg = config or MembershipAuditConfig()
    if overrides:
        cfg = replace(cfg, **overrides)
    start = time.perf_counter()
    pop = _memberships(cfg)
    notes: list[str] = []
    if cfg.dp is not None and cfg.canaries is not None and cfg.canaries.repeats > 1:
        notes.append(f"DP-SGD's accountant ε protects one training row; a canary repeated {cfg.canaries.repeats} "
                     "times is only covered by group privacy, so its bounds may exceed the accountant ε")
    by_family = _train(cfg, pop)
    rows: list[AuditRow] = []
    info: dict[str, dict[str, Any]] = {}
    float_acc: float | None = None
    for ti, target in enumerate(cfg.targets()):
        outs = by_family[target.family]
        info[target.label], target_notes = _describe_target(target, outs, pop, cfg.shadows + 1, float_acc)
        notes += target_notes
        if target.label == "float" and info[target.label]["accuracy_non_members"] is not None:
            float_acc = info[target.label]["accuracy_non_members"]
        logits = {o.index: o.logits[target.label] for o in outs if target.label in o.logits}
        evaluated = [t for t in range(cfg.evaluated) if t in logits]
        if not evaluated:
            notes.append(f"{target.label}: no attacked model could be built; no measurement")
            continue
        for pi, policy in enumerate(cfg.policies):
            prng = np.random.default_rng([cfg.seed, 3, ti, pi])
            cell_rows, cell_notes = _measure(cfg, target, policy, prng, logits, evaluated, pop,
                                             info[target.label]["accountant_epsilon"])
            rows += cell_rows
            notes += cell_notes
    return MembershipAudit(cfg.to_dict(), tuple(rows), info, tuple(dict.fromkeys(notes)), time.perf_counter() - start)
