"""What a membership-inference audit does: :class:`MembershipAuditConfig` and :class:`CanarySpec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secquant.audit.estimators import check_confidence, check_delta
from secquant.audit.membership.attacks import AttackKind
from secquant.audit.membership.policies import ReleasePolicy, default_policies, is_release_policy
from secquant.audit.membership.shadows import Backend
from secquant.audit.membership.targets import DEFAULT_BITS, Family, Target
from secquant.audit.membership.training import DPSpec, TrainSpec
from secquant.data import DatasetName
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum
from secquant.training import check_int

__all__ = ["DEFAULT_ATTACKS", "CanarySpec", "MembershipAuditConfig"]

DEFAULT_ATTACKS = (AttackKind.LOSS, AttackKind.LIRA_OFFLINE, AttackKind.LIRA_ONLINE)


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
        check_int(self.count, "CanarySpec.count", 2)
        check_int(self.repeats, "CanarySpec.repeats", 1)


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
            check_int(self.population, "population", 20)
        check_int(self.shadows, "shadows", 1)
        check_int(self.evaluated, "evaluated", 1)
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
        check_int(self.seed, "seed", 0)

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
            "dataset": DatasetName(self.dataset).value, "population": self.population, "shadows": self.shadows,
            "evaluated": self.evaluated, "targets": [t.label for t in self.targets()],
            "policies": [p.label for p in self.policies], "attacks": [a.value for a in self.attacks],
            "train": vars(self.train).copy(), "dp": None if self.dp is None else vars(self.dp).copy(),
            "canaries": None if self.canaries is None else vars(self.canaries).copy(),
            "delta": self.delta, "confidence": self.confidence, "backend": Backend(self.backend).value, "seed": self.seed,
        }
