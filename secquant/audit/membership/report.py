"""Write a membership audit as a report folder an auditor can hand on.

Files (each written to a temporary name and moved into place):

* ``results.json``: configuration, per-target accuracy, every row with its ROC;
* ``table.txt``: the text table;
* ``roc.png``: ROC curves on log-log axes, one panel per release policy;
* ``epsilon.png``: ε lower bounds (split MIA and one-run) against target and policy;
* ``tpr.png``: TPR at 0.1 % FPR against target and policy;
* ``summary.md``: the short summary.

matplotlib is imported here only (Agg backend, no display).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from secquant.artifact import write_bytes_atomic
from secquant.audit.membership.result import AuditRow, MembershipAudit
from secquant.errors import ConfigError

__all__ = ["best_rows", "write_report"]


def best_rows(result: MembershipAudit) -> dict[tuple[str, str], AuditRow]:
    """For each (target, policy), the row of the attack with the largest TPR at 0.1 % FPR (ties: AUC)."""
    best: dict[tuple[str, str], AuditRow] = {}
    for r in result.rows:
        key = (r.target, r.policy)
        cur = best.get(key)
        if cur is None or (r.metrics.tpr_at[0.001], r.metrics.auc) > (cur.metrics.tpr_at[0.001], cur.metrics.auc):
            best[key] = r
    return best


def _save_png(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def _order(result: MembershipAudit) -> tuple[list[str], list[str]]:
    targets = [t for t in result.config["targets"] if any(r.target == t for r in result.rows)]
    policies = [p for p in result.config["policies"] if any(r.policy == p for r in result.rows)]
    return targets, policies


def _plots(result: MembershipAudit, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    targets, policies = _order(result)
    best = best_rows(result)
    written = []
    fig, axes = plt.subplots(1, len(policies), figsize=(4.8 * len(policies), 4.2), squeeze=False)
    for ax, policy in zip(axes[0], policies):
        for target in targets:
            r = best.get((target, policy))
            if r is None:
                continue
            ax.plot(r.metrics.fpr[1:], r.metrics.tpr[1:], label=f"{target} ({r.attack}, AUC {r.metrics.auc:.2f})")
        ax.plot([1e-4, 1], [1e-4, 1], "k:", lw=0.8)
        ax.set(xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1), xlabel="false positive rate",
               ylabel="true positive rate", title=f"release: {policy}")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    _save_png(fig, out / "roc.png")
    plt.close(fig)
    written.append("roc.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for policy in policies:
        xs = [t for t in targets if (t, policy) in best]
        mia = [result.max_epsilon(t, policy)[0] for t in xs]
        one = [result.max_epsilon(t, policy)[1] for t in xs]
        axes[0].plot(xs, mia, marker="o", label=policy)
        axes[1].plot(xs, one, marker="o", label=policy)
    acct = {t: v["accountant_epsilon"] for t, v in result.targets.items() if v.get("accountant_epsilon") is not None}
    for ax, title in zip(axes, ("ε lower bound, threshold split (any attack)", "ε lower bound, one run (any attack)")):
        for t, e in acct.items():
            if t in targets:
                ax.scatter([t], [e], marker="_", s=400, color="red", label=f"accountant ε ({t})")
        ax.set(title=title, xlabel="target (float, bit-width, DP-SGD)", ylabel="ε (nats)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, out / "epsilon.png")
    plt.close(fig)
    written.append("epsilon.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for policy in policies:
        xs = [t for t in targets if (t, policy) in best]
        ax.plot(xs, [best[(t, policy)].metrics.tpr_at[0.001] for t in xs], marker="o", label=policy)
    ax.set(title="TPR at 0.1% FPR (best attack)", xlabel="target", ylabel="TPR")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    ax.legend(fontsize=7)
    _save_png(fig, out / "tpr.png")
    plt.close(fig)
    written.append("tpr.png")
    return written


def _summary(result: MembershipAudit) -> str:
    cfg = result.config
    targets, policies = _order(result)
    best = best_rows(result)
    lines = [
        "# Membership-inference audit",
        "",
        f"Data: `{cfg['dataset']}`, {cfg['population'] or 'all'} rows; {cfg['shadows']} shadow models per attacked model, "
        f"{cfg['evaluated']} attacked models pooled; each row is in a model's training set with probability 1/2. "
        f"Confidence {cfg['confidence']:.0%}, δ = {cfg['delta']:g}. Wall time {result.seconds:.0f} s.",
        "",
        "## Targets",
        "",
        "| target | accuracy (members) | accuracy (non-members) | accountant ε | problems |",
        "|---|---|---|---|---|",
    ]
    for t, v in result.targets.items():
        acc_in = "n/a" if v["accuracy_members"] is None else f"{v['accuracy_members']:.1%}"
        acc_out = "n/a" if v["accuracy_non_members"] is None else f"{v['accuracy_non_members']:.1%}"
        acct = "" if v["accountant_epsilon"] is None else f"{v['accountant_epsilon']:.2f}"
        prob = "; ".join(v["errors"])[:120] or ("" if v["failed_models"] == 0 else f"{v['failed_models']} failed")
        lines.append(f"| {t} | {acc_in} | {acc_out} | {acct} | {prob} |")
    lines += [
        "",
        "## Leakage",
        "",
        "AUC and TPR are those of the attack with the highest TPR at 0.1% FPR; the ε columns are the largest "
        "bound over all attacks (each attack's bound is Bonferroni-corrected, so the largest holds at the stated confidence).",
        "",
        "| target | release | attack | AUC | TPR @ 0.1% FPR | TPR @ 1% FPR | ε ≥ (split) | ε ≥ (one run) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        for p in policies:
            r = best.get((t, p))
            if r is None:
                continue
            split, one = result.max_epsilon(t, p)
            lines.append(f"| {t} | {p} | {r.attack} | {r.metrics.auc:.3f} | {r.metrics.tpr_at[0.001]:.4f} | "
                         f"{r.metrics.tpr_at[0.01]:.4f} | {split:.2f} | {one:.2f} |")
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in result.notes] or ["- none"]
    lines += [
        "",
        "## How to read this",
        "",
        "- AUC 0.5 and TPR equal to the FPR mean the attack does no better than guessing.",
        "- *ε ≥ (one run)* is a lower bound with a proof (Steinke, Nasr, Jagielski 2023): at the stated confidence the "
        "training pipeline is not (ε, δ)-DP for any smaller ε. It is a *lower* bound: a small value does not prove privacy.",
        "- *ε ≥ (split)* comes from the best threshold's TPR/FPR with Clopper–Pearson intervals (threshold chosen on "
        "half the examples, counted on the other half). It treats examples as independent trials, which they are not "
        "inside one model; read it as a strength-of-attack summary, not a proof.",
        "- The release policy is what the client sees after decryption; compare rows of one target to see what a policy buys.",
        "- Targets near chance accuracy (see the table above) leak little because they learned little.",
        "- Files: `results.json` (all numbers, ROC points), `roc.png`, `epsilon.png`, `tpr.png`, `table.txt`.",
        "",
    ]
    return "\n".join(lines)


def write_report(result: MembershipAudit, out_dir: str | os.PathLike[str], *, plots: bool = True) -> list[Path]:
    """Write the report folder.

    Args:
        result: What :func:`run_membership_audit` returned.
        out_dir: Folder, created if needed; existing report files are replaced.
        plots: Also draw the PNGs (needs matplotlib).

    Returns:
        Paths written.

    Raises:
        ConfigError: ``out_dir`` exists and is not a directory, or the result has no rows.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report folder {out} exists and is not a directory; choose another --out")
    if not result.rows:
        raise ConfigError("the audit measured nothing (no rows); see its notes: " + "; ".join(result.notes))
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "results.json", json.dumps(result.to_dict(), indent=1).encode())
    write_bytes_atomic(out / "table.txt", (result.table() + "\n").encode())
    names = ["results.json", "table.txt"]
    if plots:
        names += _plots(result, out)
    write_bytes_atomic(out / "summary.md", _summary(result).encode())
    names.append("summary.md")
    return [out / n for n in names]
