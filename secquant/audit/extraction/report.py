"""Write an extraction audit: ``results.json``, ``table.txt``, ``fidelity.png`` and ``summary.md``.

* ``fidelity.png``: fidelity against queries (log scale), one panel per
  attack, one line per release policy, the target fidelity dashed;
* ``summary.md``: the victim, the per-policy query budget that keeps
  extraction below the target, queries to 90 % / 99 % fidelity, ε per query.

matplotlib is imported only when plots are written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from secquant.artifact import write_bytes_atomic
from secquant.audit.extraction.audit import ExtractionAudit

__all__ = ["budget_sentence", "summary_markdown", "write_report"]


def _plot(result: ExtractionAudit, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = [a for a in result.config["attacks"] if any(r.attack == a for r in result.rows)]
    errors = any(r.parameter_error is not None for r in result.rows)
    panels = max(1, len(attacks)) + int(errors)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.0), squeeze=False)
    if errors:
        ax = axes[0][-1]
        for p in result.config["policies"]:
            rows = [r for r in result.cells(p["label"], "equation") if r.parameter_error is not None]
            if rows:
                ax.plot([r.queries for r in rows], [max(r.parameter_error, 1e-16) for r in rows], marker="o",
                        label=p["label"])
        ax.set(xscale="log", yscale="log", xlabel="queries", ylabel="relative parameter error",
               title="equation attack: parameter error")
        ax.legend(fontsize=8)
    for ax, attack in zip(axes[0], attacks):
        for p in result.config["policies"]:
            rows = result.cells(p["label"], attack)
            if rows:
                ax.plot([r.queries for r in rows], [r.fidelity for r in rows], marker="o", label=p["label"])
        ax.axhline(result.config["target_fidelity"], color="grey", linestyle="--", linewidth=1)
        ax.set(xscale="log", xlabel="queries", ylabel="fidelity (agreement with the victim)", ylim=(0, 1.02),
               title=f"{attack} attack")
        ax.legend(fontsize=8)
    fig.suptitle(result.victim["description"], fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def _fmt(value: object) -> str:
    return "not reached" if value is None else str(value)


def budget_sentence(result: ExtractionAudit, policy: str) -> str:
    """The per-key query budget for ``policy`` in words, e.g. ``at most 16 queries per key``.

    Raises:
        ConfigError: the policy was not measured.
    """
    budget, reached = result.recommended_budget(policy)
    if not reached:
        return f"{budget} or more queries per key (the target was not reached within the tested budgets)"
    if budget == 0:
        return f"fewer than {result.config['budgets'][0]} queries per key (the smallest tested already reaches it)"
    return f"at most {budget} queries per key"


def summary_markdown(result: ExtractionAudit) -> str:
    """The Markdown summary of an audit."""
    v, target = result.victim, result.config["target_fidelity"]
    lines = [
        "# Extraction audit", "",
        (f"Victim: {v['description']}; {v['features']} features, {v['classes']} classes, held-out accuracy "
        f"{v['accuracy']:.1%} on {v['heldout']} inputs; affine in its input integers: {'yes' if v['affine'] else 'no'}."),
        (f"Fidelity is agreement with the victim's top class on the held-out inputs; {result.config['trials']} "
        f"trial(s) per cell, seed {result.config['seed']}."), "",
        f"## Query budget that keeps extraction below {target:.0%} fidelity", "",
        "| policy | ε per query (δ) | query budget |", "|---|---|---|",
    ]
    for p in result.config["policies"]:
        label = p["label"]
        eps = result.epsilon.get(label)
        eps_text = f"{eps[0]:.3g} ({eps[1]:g})" if eps else "none (no noise)"
        text = budget_sentence(result, label) if any(r.policy == label for r in result.rows) else "not measured"
        lines.append(f"| {label} | {eps_text} | {text} |")
    lines += ["", "## Queries to 90 % and 99 % fidelity", "",
              "| policy | attack | to 90 % | to 99 % | best fidelity |", "|---|---|---|---|---|"]
    for s in result.summary():
        lines.append(f"| {s['policy']} | {s['attack']} | {_fmt(s['queries_to_90'])} | {_fmt(s['queries_to_99'])} | "
                     f"{s['best_fidelity']:.4f} |")
    lines += ["", "## All measurements", "", "```", result.table(), "```", ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    lines += [("Budgets are the largest tested query count at which every tested count up to it stayed below the "
              "target; set a per-key query budget at or below it.  ε per query covers all outputs of one query "
              "moving by one grid step each (the policy's sensitivity), composed by dp-accounting."), ""]
    return "\n".join(lines)


def write_report(result: ExtractionAudit, out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write the report folder; returns the files written.

    Raises:
        ImportError: ``plots`` and matplotlib (the ``audit`` extra) is missing.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_bytes_atomic(folder / "results.json", json.dumps(result.to_dict(), indent=1).encode()),
             write_bytes_atomic(folder / "table.txt", (result.table() + "\n").encode())]
    if plots:
        paths.append(_plot(result, folder / "fidelity.png"))
    paths.append(write_bytes_atomic(folder / "summary.md", summary_markdown(result).encode()))
    return paths
