"""Speed of the DP auditor: 10^6 draws per input of scalar mechanisms (budget: 10 s each).

Prints a table and writes ``bench/results/audit_speed.json``.  Columns: time to
draw the samples alone, time of the whole audit (selection, event search,
estimation), the ε lower bound reached and the claim.

Run:  python bench/audit_speed.py [--samples 1000000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

from secquant.audit import audit_mechanism
from secquant.dp.mechanisms import (
    DiscreteGaussianMechanism,
    DiscreteLaplaceMechanism,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
)

BUDGET_SECONDS = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="draws per input (default 10^6)")
    parser.add_argument("--repeats", type=int, default=1, help="timed repetitions; the best is reported")
    args = parser.parse_args(argv)
    cases = [
        ("laplace", LaplaceMechanism(1.0), 0.0, 1.0, 0.0),
        ("gaussian", GaussianMechanism(1.0), 0.0, 1.0, 1e-5),
        ("discrete_laplace", DiscreteLaplaceMechanism(1.0, 1), 0, 1, 0.0),
        ("discrete_gaussian_mod_2^16", DiscreteGaussianMechanism(2.0, 1, 2**16), 0, 1, 1e-5),
        ("randomized_response", RandomizedResponse(4, 0.5), 0, 1, 0.0),
    ]
    rows = []
    for name, mech, x0, x1, delta in cases:
        claim = mech.accountant_epsilon(delta)
        draw_s, audit_s, bound = np.inf, np.inf, 0.0
        for rep in range(args.repeats):
            t = time.perf_counter()
            rng = np.random.default_rng(rep)
            mech(x0, rng, args.samples)
            mech(x1, rng, args.samples)
            draw_s = min(draw_s, time.perf_counter() - t)
            t = time.perf_counter()
            result = audit_mechanism(mech, x0, x1, epsilon=claim, delta=delta, samples=args.samples, seed=rep)
            audit_s = min(audit_s, time.perf_counter() - t)
            bound = result.epsilon_lower_bound
        rows.append({
            "mechanism": name, "samples_per_input": args.samples, "draw_s": draw_s, "audit_s": audit_s,
            "within_budget": audit_s <= BUDGET_SECONDS, "epsilon_lower_bound": bound, "claimed_epsilon": claim,
            "delta": delta,
        })
    print(table(rows, ["mechanism", "samples_per_input", "draw_s", "audit_s", "within_budget",
                       "epsilon_lower_bound", "claimed_epsilon", "delta"]))
    path = write_json("audit_speed", {"budget_seconds": BUDGET_SECONDS, "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
