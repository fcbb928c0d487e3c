"""The result of a membership-inference audit: one :class:`AuditRow` per (target, policy, attack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secquant.audit.membership.metrics import AttackMetrics
from secquant.audit.membership.one_run import OneRunResult
from secquant.errors import ConfigError

__all__ = ["AuditRow", "MembershipAudit"]


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
