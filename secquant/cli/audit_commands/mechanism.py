"""``secquant audit mechanism``: audit the built-in mechanisms and print a table.

Columns: the claim (ε, δ), dp-accounting's ε for the declared noise at that δ,
the empirical ε lower bound at the stated confidence (searched over the case's
neighbouring pairs, Bonferroni-corrected), and whether the claim is violated.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``mechanism`` under ``secquant audit``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mechanism",
        help="audit the built-in DP mechanisms (empirical ε lower bound vs. claim and accountant)",
        description=__doc__,
    )
    parser.add_argument("--samples", type=int, default=200_000, help="draws per input and pair (default 200000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence of each bound (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="audit only these cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a verdict differs from the expected one")
    parser.set_defaults(func=run)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _fmt_delta(delta: float) -> str:
    return "0" if delta == 0 else f"{delta:.0e}"


def run(args: argparse.Namespace) -> int:
    """Run the audits; returns the exit code."""
    from secquant.audit.cases import builtin_case, builtin_cases
    from secquant.audit.pairs import audit_pairs
    from secquant.audit.result import json_safe, write_text_atomic

    cases = [builtin_case(n) for n in args.only] if args.only else list(builtin_cases())
    if args.list:
        for case in cases:
            kind = "broken " if case.expect_violation else "correct"
            print(f"{case.name:<30} {kind}  {case.note}")
        return 0
    header = f"{'mechanism':<30} {'claimed ε':>9} {'δ':>8} {'accountant ε':>12} {'lower bound':>11}  {'violation':<9} expected"
    print(header)
    print("-" * len(header))
    rows = []
    mismatches = 0
    started = time.perf_counter()
    for case in cases:
        result = audit_pairs(
            case.mechanism, case.pairs, case.claim.epsilon, case.claim.delta,
            samples=args.samples, confidence=args.confidence, seed=args.seed, name=case.name,
        )
        ok = result.violation == case.expect_violation
        mismatches += not ok
        print(
            f"{case.name:<30} {case.claim.epsilon:>9.3f} {_fmt_delta(case.claim.delta):>8} {_fmt(case.accountant_epsilon):>12} "
            f"{result.epsilon_lower_bound:>11.3f}  {'YES' if result.violation else 'no':<9} "
            f"{'YES' if case.expect_violation else 'no'}{'' if ok else '  <-- unexpected'}",
            flush=True,
        )
        rows.append({"case": case.name, "expect_violation": case.expect_violation,
                     "accountant_epsilon": case.accountant_epsilon, "claim_source": case.claim.source,
                     "result": result.to_dict()})
    print(f"\n{len(cases)} case(s), {args.samples} draws per input, confidence {args.confidence}; "
          f"{mismatches} unexpected verdict(s); {time.perf_counter() - started:.1f} s")
    if args.json:
        table = {"type": "secquant.audit.mechanism_table", "version": 1, "rows": rows}
        write_text_atomic(args.json, json.dumps(json_safe(table), indent=2) + "\n")
    return 1 if (args.check and mismatches) else 0
