"""Audit your own differentially private mechanism with secquant.

A mechanism is any callable ``mechanism(x, rng, n)`` that returns ``n`` outputs
along axis 0, drawing all randomness from ``rng``.  Here: a noisy clipped sum,
first implemented correctly, then with a classic bug (clipping after the
noise), audited on a search over neighbouring datasets.

Run:  python examples/audit_mechanism.py [--samples 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from secquant.audit import audit_mechanism, audit_pairs
from secquant.dp.mechanisms import LaplaceMechanism

EPSILON = 1.0
CLIP = 1.0  # each record contributes at most CLIP: L1 sensitivity of the sum


def noisy_clipped_sum(data: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    """Correct: clip each record to [0, CLIP], sum, add Lap(CLIP/ε)."""
    total = np.clip(np.asarray(data, dtype=float), 0.0, CLIP).sum()
    return total + rng.laplace(0.0, CLIP / EPSILON, n)


def buggy_sum(data: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    """Bug: noise calibrated to CLIP but the records are never clipped."""
    total = np.asarray(data, dtype=float).sum()
    return total + rng.laplace(0.0, CLIP / EPSILON, n)


def neighbours() -> Any:
    """Datasets differing in one record (generator; the search corrects for all of them)."""
    base = [0.2, 0.7, 0.5]
    for extra in (0.0, 1.0, 3.0):
        yield base, [*base, extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="draws per input (default 10^6)")
    parser.add_argument("--json", help="write the buggy audit as JSON here")
    args = parser.parse_args(argv)

    # 1. One pair, a built-in mechanism: Laplace with ε = 1.
    lap = LaplaceMechanism(scale=1.0)
    print(audit_mechanism(lap, 0.0, 1.0, epsilon=lap.accountant_epsilon(0.0), samples=args.samples, seed=0))

    # 2. Your own mechanism over several neighbouring pairs.
    for mech in (noisy_clipped_sum, buggy_sum):
        search = audit_pairs(mech, neighbours(), epsilon=EPSILON, samples=args.samples, seed=0)
        print()
        print(search)
        if mech is buggy_sum and args.json:
            search.to_json(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
