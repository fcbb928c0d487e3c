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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.estimators import check_confidence, check_delta
from secquant.audit.membership.attacks import AttackKind, confidence_scores, lira_scores, loss_scores
from secquant.audit.membership.metrics import AttackMetrics, attack_metrics
from secquant.audit.membership.one_run import OneRunResult, one_run_audit
from secquant.audit.membership.policies import Features, ReleasePolicy, default_policies, features, is_release_policy
from secquant.audit.membership.shadows import Backend, ModelJob, ModelOutputs, run_jobs
from secquant.audit.membership.targets import DEFAULT_BITS, Family, Target
from secquant.audit.membership.training import DPSpec, TrainSpec
from secquant.data import DatasetName
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["AuditRow", "CanarySpec", "MembershipAudit", "MembershipAuditConfig", "run_membership_audit"]

DEFAULT_ATTACKS = (AttackKind.LOSS, AttackKind.LIRA_OFFLINE, AttackKind.LIRA_ONLINE)


def _int_at_least(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CanarySpec:
    """Make some population rows easier to detect (for planted-leak tests and worst cases).

    Attributes:
        count: Canary rows (the first ``count`` of the shuffled population), >= 2.
        repeats: Copies of a canary in the training set when it is included, >= 1.
        mislabel: Give each canary a wrong label (fixed per canary), the classic hard-to-learn canary.

    Raises:
        ConfigError: a field out of range.
    """

    count: int = 100
    repeats: int = 1
    mislabel: bool = False

    def __post_init__(self) -> None:
        _int_at_least(self.count, "CanarySpec.count", 2)
        _int_at_least(self.repeats, "CanarySpec.repeats", 1)


@dataclass(frozen=True)
class MembershipAuditConfig:
    """Everything one audit does.

    Attributes:
        dataset: ``digits``, ``breast_cancer`` or ``mnist`` (train and test pooled into one population).
        population: Rows used (a fixed random subset), None for all; >= 20.
        shadows: Shadow models per attacked model, >= 1 (LiRA needs >= 2 to be useful).
        evaluated: Models attacked in turn (scores pooled), in [1, shadows + 1].
        bits: Bit-widths of ``quantize_model`` targets, each in [2, 16].
        include_float: Attack the float model too.
        dp: DP-SGD training for the ``dpsgd`` target; None to skip it.
        dp_bits: Bit-widths at which the DP-SGD model is also quantized.
        train: Architecture and non-private training.
        policies: Release policies.
        attacks: Attacks run for every target and policy.
        canaries: Optional canary treatment (repeats, wrong labels).
        delta: δ of the ε lower bounds, in [0, 1).
        confidence: Confidence of every ε lower bound, in (0, 1).
        backend: ``serial``, ``joblib`` or ``ray``.
        n_jobs: Parallel workers; None for all CPUs.
        ray_address: Ray cluster to use; None starts a local one.
        progress: tqdm bar over the models.
        seed: Fixes the population, memberships, training and release noise.

    Raises:
        ConfigError: any field out of range.
    """

    dataset: DatasetName | str = DatasetName.DIGITS
    population: int | None = None
    shadows: int = 16
    evaluated: int = 4
    bits: tuple[int, ...] = DEFAULT_BITS
    include_float: bool = True
    dp: DPSpec | None = field(default_factory=DPSpec)
    dp_bits: tuple[int, ...] = ()
    train: TrainSpec = field(default_factory=TrainSpec)
    policies: tuple[ReleasePolicy, ...] = field(default_factory=default_policies)
    attacks: tuple[AttackKind, ...] = DEFAULT_ATTACKS
    canaries: CanarySpec | None = None
    delta: float = 1e-5
    confidence: float = 0.95
    backend: Backend | str = Backend.JOBLIB
    n_jobs: int | None = 2
    ray_address: str | None = None
    progress: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", coerce_enum(self.dataset, DatasetName, "dataset"))
        object.__setattr__(self, "backend", coerce_enum(self.backend, Backend, "backend"))
        if self.population is not None:
            _int_at_least(self.population, "population", 20)
        _int_at_least(self.shadows, "shadows", 1)
        _int_at_least(self.evaluated, "evaluated", 1)
        if self.evaluated > self.shadows + 1:
            raise ConfigError(f"evaluated={self.evaluated} exceeds the {self.shadows + 1} models trained (shadows + 1)")
        object.__setattr__(self, "bits", tuple(Target(Family.STANDARD, b).bits for b in self.bits))
        object.__setattr__(self, "dp_bits", tuple(Target(Family.DPSGD, b).bits for b in self.dp_bits))
        if len(set(self.bits)) != len(self.bits):
            raise ConfigError(f"bits contains duplicates: {self.bits}")
        if self.dp_bits and self.dp is None:
            raise ConfigError("dp_bits needs dp=DPSpec(...)")
        if not self.targets():
            raise ConfigError("nothing to audit: give bits, include_float=True or dp")
        if not self.policies:
            raise ConfigError("give at least one release policy")
        for p in self.policies:
            if not is_release_policy(p):
                raise ConfigError(f"{p!r} is not a release policy; use FullScores(), RoundedScores(k), TopLabel() "
                                  "or DiscreteGaussianScores(sigma) (or parse_policy('round4'))")
        labels = [p.label for p in self.policies]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"release policies repeat: {labels}")
        object.__setattr__(self, "attacks", tuple(coerce_enum(a, AttackKind, "attack") for a in self.attacks))
        if not self.attacks:
            raise ConfigError("give at least one attack")
        check_delta(self.delta)
        check_confidence(self.confidence)
        _int_at_least(self.seed, "seed", 0)

    def targets(self) -> tuple[Target, ...]:
        """Targets in report order: float, integer bit-widths, DP-SGD."""
        out = [Target(Family.STANDARD)] if self.include_float else []
        out += [Target(Family.STANDARD, b) for b in self.bits]
        if self.dp is not None:
            out += [Target(Family.DPSGD)] + [Target(Family.DPSGD, b) for b in self.dp_bits]
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "dataset": self.dataset.value, "population": self.population, "shadows": self.shadows,
            "evaluated": self.evaluated, "targets": [t.label for t in self.targets()],
            "policies": [p.label for p in self.policies], "attacks": [a.value for a in self.attacks],
            "train": vars(self.train).copy(), "dp": None if self.dp is None else vars(self.dp).copy(),
            "canaries": None if self.canaries is None else vars(self.canaries).copy(),
            "delta": self.delta, "confidence": self.confidence, "backend": self.backend.value, "seed": self.seed,
        }


@dataclass(frozen=True, eq=False)
class AuditRow:
    """One (target, policy, attack) measurement.

    Its ε bounds are taken at confidence ``1 - (1 - c) / attacks`` (Bonferroni over the attacks),
    so the largest bound over the attacks of one (target, policy) holds at the configured ``c``.

    Attributes:
        target, policy, attack: Labels.
        metrics: AUC, TPR at low FPR, split ε bound, ROC (pooled over the evaluated models).
        one_run: One-run ε bound on the first model, or None if it could not be scored.
        accountant_epsilon: The DP-SGD accountant's ε for DP targets, else None.
    """

    target: str
    policy: str
    attack: str
    metrics: AttackMetrics
    one_run: OneRunResult | None
    accountant_epsilon: float | None = None

    def to_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "target": self.target, "policy": self.policy, "attack": self.attack,
            **self.metrics.to_dict(curve=curve),
            "one_run": None if self.one_run is None else self.one_run.to_dict(),
            "accountant_epsilon": self.accountant_epsilon,
        }


@dataclass(frozen=True, eq=False)
class MembershipAudit:
    """The result of :func:`run_membership_audit`.

    Attributes:
        config: The configuration, as a dict.
        rows: One per (target, policy, attack) that could be measured.
        targets: Target label -> accuracy on members / non-members, errors, models, accountant ε.
        notes: Plain-language remarks (targets that failed, degenerate models, caveats).
        seconds: Wall time.
    """

    config: dict[str, Any]
    rows: tuple[AuditRow, ...]
    targets: dict[str, dict[str, Any]]
    notes: tuple[str, ...]
    seconds: float

    def row(self, target: str, policy: str, attack: str) -> AuditRow:
        """The row for one (target, policy, attack).

        Raises:
            ConfigError: no such row.
        """
        for r in self.rows:
            if (r.target, r.policy, r.attack) == (target, policy, attack):
                return r
        raise ConfigError(f"no row for target={target!r}, policy={policy!r}, attack={attack!r}")

    def max_epsilon(self, target: str, policy: str) -> tuple[float, float]:
        """Largest (split, one-run) ε bound over the attacks of one cell, valid at the configured confidence."""
        cell = [r for r in self.rows if (r.target, r.policy) == (target, policy)]
        if not cell:
            raise ConfigError(f"no rows for target={target!r}, policy={policy!r}")
        return (max(r.metrics.epsilon.epsilon for r in cell),
                max((r.one_run.epsilon for r in cell if r.one_run is not None), default=0.0))

    def table(self) -> str:
        """A fixed-width text table of every row."""
        head = f"{'target':<11}{'policy':<10}{'attack':<13}{'AUC':>6}{'TPR@.1%':>9}{'TPR@1%':>8}{'eps_MIA':>9}{'eps_1run':>9}{'eps_acct':>9}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            acct = "" if r.accountant_epsilon is None else f"{r.accountant_epsilon:.2f}"
            one = "" if r.one_run is None else f"{r.one_run.epsilon:.2f}"
            lines.append(
                f"{r.target:<11}{r.policy:<10}{r.attack:<13}{r.metrics.auc:6.3f}{r.metrics.tpr_at[0.001]:9.4f}"
                f"{r.metrics.tpr_at[0.01]:8.4f}{r.metrics.epsilon.epsilon:9.2f}{one:>9}{acct:>9}"
            )
        return "\n".join(lines)

    def to_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "type": "secquant.MembershipAudit", "version": 1, "config": self.config,
            "targets": self.targets, "notes": list(self.notes), "seconds": self.seconds,
            "rows": [r.to_dict(curve=curve) for r in self.rows],
        }


def _population(cfg: MembershipAuditConfig) -> tuple[NDArray[np.float32], NDArray[np.int64], int]:
    from secquant.data import load_dataset

    d = load_dataset(cfg.dataset, seed=cfg.seed)
    x = np.concatenate([d.x_train, d.x_test]).reshape(-1, d.n_features)
    y = np.concatenate([d.y_train, d.y_test])
    rng = np.random.default_rng([cfg.seed, 1])
    order = rng.permutation(len(y))
    if cfg.population is not None:
        if cfg.population > len(y):
            raise ConfigError(f"population={cfg.population} exceeds the {len(y)} rows of {cfg.dataset.value}")
        order = order[: cfg.population]
    return x[order], y[order], d.n_classes


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
    from dataclasses import replace

    cfg = config or MembershipAuditConfig()
    if overrides:
        cfg = replace(cfg, **overrides)
    start = time.perf_counter()
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
    early_notes = []
    if cfg.dp is not None and cfg.canaries is not None and cfg.canaries.repeats > 1:
        early_notes.append(f"DP-SGD's accountant ε protects one training row; a canary repeated {cfg.canaries.repeats} "
                           "times is only covered by group privacy, so its bounds may exceed the accountant ε")
    targets = cfg.targets()
    jobs = []
    for family in Family:
        fam_targets = tuple(t for t in targets if t.family is family)
        if fam_targets:
            jobs += [ModelJob(i, family, counts[i], fam_targets, cfg.seed * 100_003 + i + (50_000 if family is Family.DPSGD else 0))
                     for i in range(models)]
    outputs = run_jobs(jobs, x, y_train, n_classes, cfg.train, cfg.dp, backend=cfg.backend, n_jobs=cfg.n_jobs,
                       ray_address=cfg.ray_address, progress=cfg.progress)
    by_family: dict[Family, list[ModelOutputs]] = {}
    for out in outputs:
        by_family.setdefault(out.family, []).append(out)
    rows: list[AuditRow] = []
    info: dict[str, dict[str, Any]] = {}
    notes: list[str] = list(early_notes)
    plain = ~canary
    # Each attack's bounds are taken at a Bonferroni-corrected level, so the largest bound over
    # the attacks of one (target, policy) is valid at cfg.confidence.
    per_attack = 1.0 - (1.0 - cfg.confidence) / len(cfg.attacks)
    float_acc: float | None = None
    for ti, target in enumerate(targets):
        outs = by_family[target.family]
        usable = [o.index for o in outs if target.label in o.logits]
        errors = sorted({o.errors[target.label] for o in outs if target.label in o.errors})
        eps_acct = [o.accountant_epsilon for o in outs if o.accountant_epsilon is not None]
        acct = max(eps_acct) if eps_acct else None
        logits = {o.index: o.logits[target.label] for o in outs if target.label in o.logits}
        acc_in = [float(np.mean(logits[i][included[i] & plain].argmax(1) == y[included[i] & plain])) for i in usable]
        acc_out = [float(np.mean(logits[i][~included[i] & plain].argmax(1) == y[~included[i] & plain])) for i in usable]
        info[target.label] = {
            "models": len(usable), "failed_models": models - len(usable), "errors": errors,
            "accuracy_members": float(np.mean(acc_in)) if acc_in else None,
            "accuracy_non_members": float(np.mean(acc_out)) if acc_out else None,
            "accountant_epsilon": acct,
        }
        if errors:
            notes.append(f"{target.label}: quantize_model failed for {models - len(usable)} of {models} models ({errors[0]})")
        if acc_out and target.label == "float":
            float_acc = float(np.mean(acc_out))
        if acc_out and np.mean(acc_out) < 2.0 / n_classes:
            notes.append(f"{target.label}: test accuracy {np.mean(acc_out):.1%} is near chance ({1 / n_classes:.0%}); "
                         "its low leakage comes with a useless model")
        elif acc_out and float_acc is not None and target.family is Family.STANDARD and np.mean(acc_out) < float_acc - 0.1:
            notes.append(f"{target.label}: test accuracy {np.mean(acc_out):.1%} vs {float_acc:.1%} in float; "
                         "lower leakage here comes with a much worse model")
        evaluated = [t for t in range(cfg.evaluated) if t in logits]
        if not evaluated:
            notes.append(f"{target.label}: no attacked model could be built; no measurement")
            continue
        for pi, policy in enumerate(cfg.policies):
            prng = np.random.default_rng([cfg.seed, 3, ti, pi])
            feats: list[Features] = [None] * models  # type: ignore[list-item]
            for i in usable:
                feats[i] = _features(policy, logits[i], y_train, prng)
            for attack in cfg.attacks:
                pooled, members = [], []
                first: NDArray[np.float64] | None = None
                for t in evaluated:
                    s = _scores(attack, t, feats, counts, usable)
                    if s is None:
                        break
                    if t == evaluated[0]:
                        first = s
                    pooled.append(s)
                    members.append(included[t])
                if len(pooled) < len(evaluated):
                    notes.append(f"{target.label}/{policy.label}/{attack.value}: too few shadow models; skipped")
                    continue
                metrics = attack_metrics(np.concatenate(pooled), np.concatenate(members), delta=cfg.delta,
                                         confidence=per_attack, seed=cfg.seed)
                one = None
                if first is not None:
                    sel = canary if cfg.canaries is not None else np.ones(n, dtype=bool)
                    one = one_run_audit(first[sel], included[evaluated[0]][sel], delta=cfg.delta, confidence=per_attack)
                rows.append(AuditRow(target.label, policy.label, attack.value, metrics, one, acct))
    return MembershipAudit(cfg.to_dict(), tuple(rows), info, tuple(dict.fromkeys(notes)), time.perf_counter() - start)
