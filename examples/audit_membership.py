"""Measure what a quantized model leaks about its training data.

Trains shadow models on random halves of sklearn's digits, quantizes them at
several bit-widths, releases their scores under several policies (full scores,
rounded, top-1 label, discrete Gaussian noise), attacks them with the loss
threshold and LiRA, and writes a report folder (JSON, PNG plots, Markdown).

    python examples/audit_membership.py --out /tmp/membership            # about a minute
    python examples/audit_membership.py --shadows 3 --population 300 --epochs 5 --out /tmp/m

Size flags keep it small; ``bench/membership_sweep.py`` is the full sweep.
"""

from __future__ import annotations

import argparse
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits", help="digits, breast_cancer or mnist")
    parser.add_argument("--population", type=int, default=None, help="rows used (default all)")
    parser.add_argument("--shadows", type=int, default=8, help="shadow models per attacked model")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per model")
    parser.add_argument("--bits", default="8,4,2", help="comma-separated bit-widths")
    parser.add_argument("--dp-epsilon", type=float, default=2.0, help="DP-SGD target ε (0 skips it)")
    parser.add_argument("--no-plots", action="store_true", help="skip PNG plots")
    parser.add_argument("--out", default="membership_report", help="report folder")
    args = parser.parse_args(argv)

    config = MembershipAuditConfig(
        dataset=args.data,
        population=args.population,
        shadows=args.shadows,
        evaluated=min(2, args.shadows + 1),
        bits=tuple(int(b) for b in args.bits.split(",") if b),
        dp=DPSpec(epsilon=args.dp_epsilon) if args.dp_epsilon > 0 else None,
        train=TrainSpec(hidden=64, epochs=args.epochs),
        policies=(FullScores(), RoundedScores(4), TopLabel(), DiscreteGaussianScores(1.0)),
        progress=sys.stderr.isatty(),
        seed=0,
    )
    result = run_membership_audit(config)
    print(result.table())
    for note in result.notes:
        print("note:", note)
    paths = write_report(result, args.out, plots=not args.no_plots)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
