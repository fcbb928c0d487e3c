"""Membership-inference sweep: float, quantize_model at 8/6/4/2 bits and DP-SGD, under every release policy.

    .venv/bin/python bench/membership_sweep.py                  # digits, 16 shadows (a few minutes)
    .venv/bin/python bench/membership_sweep.py --data mnist     # 5,000 MNIST images

Prints the table (strongest attack per target and policy), writes
``bench/results/membership_sweep[_<data>].json`` and the report folder
``bench/results/membership_sweep[_<data>]/`` (JSON, PNG plots, summary.md).
Budget: at most 15 minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, table, write_json

from secquant.audit.membership import (
    DiscreteGaussianScores,
    DPSpec,
    FullScores,
    MembershipAuditConfig,
    RoundedScores,
    TopLabel,
    TrainSpec,
    run_membership_audit,
    write_report,
)
from secquant.audit.membership.report import best_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits", help="digits or mnist (default digits)")
    parser.add_argument("--shadows", type=int, default=16, help="shadow models per attacked model (default 16)")
    parser.add_argument("--evaluated", type=int, default=4, help="attacked models pooled (default 4)")
    parser.add_argument("--population", type=int, default=None, help="rows used (default all)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per model (default 30)")
    parser.add_argument("--dp-epsilon", type=float, default=1.0, help="DP-SGD target ε (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    parser.add_argument("--backend", default="joblib", help="serial, joblib or ray (default joblib)")
    args = parser.parse_args(argv)

    config = MembershipAuditConfig(
        dataset=args.data,
        population=args.population,
        shadows=args.shadows,
        evaluated=args.evaluated,
        bits=(8, 6, 4, 2),
        dp=DPSpec(epsilon=args.dp_epsilon),
        dp_bits=(8,),
        train=TrainSpec(hidden=64, epochs=args.epochs),
        policies=(FullScores(), RoundedScores(4), RoundedScores(2), TopLabel(), DiscreteGaussianScores(1.0),
                  DiscreteGaussianScores(4.0)),
        backend=args.backend,
        n_jobs=args.jobs,
        progress=sys.stderr.isatty(),
        seed=0,
    )
    start = time.perf_counter()
    result = run_membership_audit(config)
    name = "membership_sweep" if args.data == "digits" else f"membership_sweep_{args.data}"
    write_report(result, RESULTS / name)
    seconds = time.perf_counter() - start
    rows = []
    for (target, policy), r in best_rows(result).items():
        info = result.targets[target]
        rows.append({
            "target": target, "policy": policy, "acc_out": info["accuracy_non_members"], "best attack": r.attack,
            "AUC": r.metrics.auc, "TPR@0.1%": r.metrics.tpr_at[0.001], "TPR@1%": r.metrics.tpr_at[0.01],
            "eps split": result.max_epsilon(target, policy)[0],
            "eps 1run": result.max_epsilon(target, policy)[1],
            "eps acct": info["accountant_epsilon"],
        })
    columns = ["target", "policy", "acc_out", "best attack", "AUC", "TPR@0.1%", "TPR@1%", "eps split", "eps 1run", "eps acct"]
    print(table(rows, columns))
    for note in result.notes:
        print("note:", note)
    print(f"{args.data}: {len(result.rows)} rows, {config.shadows + 1} models per family, {seconds:.0f} s end to end")
    path = write_json(name, {"seconds": seconds, "config": result.config, "table": rows, "audit": result.to_dict(curve=False)})
    print(f"wrote {path} and {RESULTS / name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
