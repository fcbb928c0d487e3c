"""``secquant audit membership``: membership-inference audit of float, quantized and DP-SGD models.

Trains ``--shadows + 1`` small models on random halves of a local data set,
quantizes them at each ``--bits``, releases their scores under each policy,
runs loss-threshold and LiRA attacks, and writes a report folder (JSON, PNG
plots, Markdown summary) to ``--out``.
"""

from __future__ import annotations

import argparse
from typing import Any

from secquant.errors import ConfigError

__all__ = ["build_config", "register", "run"]


def register(subparsers: Any) -> None:
    """Add ``membership`` under ``secquant audit``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "membership", help="membership-inference audit across bit-widths and release policies", description=__doc__,
    )
    p.add_argument("--data", default="digits", help="digits, breast_cancer or mnist (default digits)")
    p.add_argument("--bits", default="8,6,4,2", help="comma-separated bit-widths of quantize_model (default 8,6,4,2)")
    p.add_argument("--shadows", type=int, default=16, help="shadow models per attacked model (default 16)")
    p.add_argument("--out", required=True, help="report folder (created; files inside are replaced)")
    p.add_argument("--population", type=int, default=None, help="use this many rows (default all)")
    p.add_argument("--evaluated", type=int, default=4, help="models attacked in turn, scores pooled (default 4)")
    p.add_argument("--policies", default="full,round4,top1,dgauss1",
                   help="release policies: full, round<k>, top1, dgauss<sigma> (default full,round4,top1,dgauss1)")
    p.add_argument("--attacks", default="loss,lira_offline,lira_online",
                   help="loss, confidence, lira_offline, lira_online (default loss,lira_offline,lira_online)")
    p.add_argument("--no-float", action="store_true", help="do not attack the float model")
    p.add_argument("--dp-epsilon", type=float, default=2.0, help="target ε of the DP-SGD model; 0 skips it (default 2)")
    p.add_argument("--hidden", type=int, default=64, help="hidden width (default 64; 0 = linear)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--canaries", type=int, default=0, help="treat this many rows as canaries (default 0: none)")
    p.add_argument("--canary-repeats", type=int, default=1, help="copies of an included canary (default 1)")
    p.add_argument("--mislabel", action="store_true", help="give canaries wrong labels")
    p.add_argument("--delta", type=float, default=1e-5, help="δ of the ε lower bounds (default 1e-5)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the ε lower bounds (default 0.95)")
    p.add_argument("--backend", default="joblib", help="serial, joblib or ray (default joblib)")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> tuple[int, ...]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return tuple(int(t) for t in items)
    except ValueError:
        raise ConfigError(f"--{what} must be comma-separated integers, e.g. 8,6,4,2; got {text!r}") from None


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`MembershipAuditConfig` the arguments describe.

    Raises:
        ConfigError: any argument out of range, naming the flag.
    """
    from secquant.audit.membership.attacks import AttackKind
    from secquant.audit.membership.config import CanarySpec, MembershipAuditConfig
    from secquant.audit.membership.policies import parse_policy
    from secquant.audit.membership.training import DPSpec, TrainSpec
    from secquant.quant.primitives import coerce_enum

    if args.dp_epsilon < 0:
        raise ConfigError(f"--dp-epsilon must be >= 0 (0 skips DP-SGD), got {args.dp_epsilon}")
    return MembershipAuditConfig(
        dataset=args.data,
        population=args.population,
        shadows=args.shadows,
        evaluated=min(args.evaluated, args.shadows + 1),
        bits=_ints(args.bits, "bits"),
        include_float=not args.no_float,
        dp=DPSpec(epsilon=args.dp_epsilon, delta=args.delta if args.delta > 0 else 1e-5) if args.dp_epsilon > 0 else None,
        train=TrainSpec(hidden=args.hidden, epochs=args.epochs),
        policies=tuple(parse_policy(p) for p in args.policies.split(",") if p.strip()),
        attacks=tuple(coerce_enum(a.strip(), AttackKind, "--attacks") for a in args.attacks.split(",") if a.strip()),
        canaries=CanarySpec(args.canaries, args.canary_repeats, args.mislabel) if args.canaries else None,
        delta=args.delta,
        confidence=args.confidence,
        backend=args.backend,
        n_jobs=args.jobs,
        ray_address=args.ray_address,
        progress=not args.no_progress,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """Run the audit, print the table, write the report; returns the exit code."""
    from secquant.audit.membership.audit import run_membership_audit
    from secquant.audit.membership.report import write_report

    result = run_membership_audit(build_config(args))
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    paths = write_report(result, args.out, plots=not args.no_plots)
    print(f"report: {paths[0].parent} ({', '.join(p.name for p in paths)}) in {result.seconds:.0f} s")
    return 0
