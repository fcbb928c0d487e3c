"""The auditor on mechanisms defined in the tests: general outputs, rare events, bad input, JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from secquant.audit import audit_mechanism, audit_pairs
from secquant.audit.pairs import PairStrategy
from secquant.errors import ConfigError, SecquantError


def laplace(x: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    return float(x) + rng.laplace(0.0, 1.0, n)


def test_laplace_bound_is_tight_and_result_is_complete() -> None:
    """Oracle: ε = 1 exactly; the bound must lie in [0.9, 1] (false-failure rate <= 5% for the upper side)."""
    r = audit_mechanism(laplace, 0.0, 1.0, epsilon=1.0, samples=200_000, seed=3)
    assert 0.9 <= r.epsilon_lower_bound <= 1.0 and not r.violation
    assert r.selection_samples + r.estimation_samples == 200_000
    assert r.bound.samples0 == r.bound.samples1 == r.estimation_samples
    assert max(d.epsilon for d in r.directions) == pytest.approx(r.epsilon_lower_bound)
    text = str(r)
    assert "no violation" in text and "P[M(x1) ∈ S]" in text and "x0 over x1" in text
    data = json.loads(r.to_json())
    assert data["epsilon_lower_bound"] == pytest.approx(r.epsilon_lower_bound)
    assert data["bound"]["count0"] == r.bound.count0 and data["confidence"] == 0.95


def test_same_seed_same_result() -> None:
    a = audit_mechanism(laplace, 0.0, 1.0, epsilon=1.0, samples=20_000, seed=5)
    b = audit_mechanism(laplace, 0.0, 1.0, epsilon=1.0, samples=20_000, seed=5)
    assert a.epsilon_lower_bound == b.epsilon_lower_bound and a.event == b.event


def test_rare_leak_is_found_without_ln_one_over_c_cap() -> None:
    """A mechanism that leaks x with probability 3e-4 and is otherwise Lap(1) (ε=1).

    Oracle: the leak makes ε infinite.  An auditor restricted to events of
    probability >= c = 1e-3 could not see it and would report about 1.  The
    bound must exceed 3 (~240 estimation hits expected, none under x0: about
    ln(211/3.7) = 4.0).  Found at 20 of 20 seeds tried; the Poisson tail puts
    the false-failure rate at this fixed seed below 1e-3.
    """

    def leaky(x: Any, rng: np.random.Generator, n: int) -> np.ndarray:
        y = float(x) + rng.laplace(0.0, 1.0, n)
        leak = rng.random(n) < 3e-4
        return np.where(leak, 1000.0 + float(x), y)

    r = audit_mechanism(leaky, 0.0, 1.0, epsilon=1.0, samples=1_000_000, seed=1)
    assert r.violation and r.epsilon_lower_bound > 3.0


def test_vector_outputs_use_a_classifier() -> None:
    """3-d Gaussian, shift (1,1,1)/√3 (L2 sensitivity 1), σ=1; correct claim at δ=1e-2 is not flagged,
    the same output claimed as pure DP is (oracle: Gaussian privacy loss is unbounded)."""
    u = np.ones(3) / math.sqrt(3)

    def gauss3(x: Any, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(x, float)[None, :] + rng.normal(0.0, 1.0, (n, 3))

    from secquant.dp.mechanisms import GaussianMechanism

    eps = GaussianMechanism(1.0).accountant_epsilon(1e-2)
    ok = audit_mechanism(gauss3, np.zeros(3), u, epsilon=eps, delta=1e-2, samples=200_000, seed=2)
    assert ok.output_kind == "vector" and not ok.violation and ok.epsilon_lower_bound > 0.5 * eps
    bad = audit_mechanism(gauss3, np.zeros(3), u, epsilon=1.0, delta=0.0, samples=200_000, seed=2)
    assert bad.violation


def test_string_and_categorical_outputs() -> None:
    """Binary RR with ε = ln 3 emitting strings; oracle ε = ln 3."""

    def rr(x: Any, rng: np.random.Generator, n: int) -> np.ndarray:
        keep = rng.random(n) < 0.75
        other = "no" if x == "yes" else "yes"
        return np.where(keep, x, other)

    r = audit_mechanism(rr, "yes", "no", epsilon=math.log(3), samples=100_000, seed=4)
    assert r.output_kind == "categorical" and not r.violation
    assert r.epsilon_lower_bound > 0.9 * math.log(3)
    flagged = audit_mechanism(rr, "yes", "no", epsilon=0.5, samples=100_000, seed=4)
    assert flagged.violation


def test_pair_search_generator_and_select() -> None:
    """Only the pair (0, 2) breaks a claim of ε=1 for Lap(1): ε=2 there."""

    def pairs() -> Any:
        yield (0.0, 0.5)
        yield (0.0, 2.0)
        yield (0.0, 0.1)

    for strategy in ("bonferroni", PairStrategy.SELECT):
        res = audit_pairs(laplace, pairs(), epsilon=1.0, samples=50_000, seed=0, strategy=strategy)
        assert res.violation and res.best.x1 == "2.0" and res.pairs == 3
        assert json.loads(res.to_json())["strategy"] == PairStrategy(strategy).value if isinstance(strategy, PairStrategy) else strategy
    bon = audit_pairs(laplace, pairs(), epsilon=1.0, samples=50_000, strategy="bonferroni")
    assert bon.per_pair_confidence == pytest.approx(1 - 0.05 / 3)
    with pytest.raises(ConfigError, match="max_pairs"):
        audit_pairs(laplace, pairs(), epsilon=1.0, samples=5_000, max_pairs=2)
    with pytest.raises(ConfigError):
        audit_pairs(laplace, [], epsilon=1.0, samples=5_000)


def test_json_file_is_written(tmp_path: Any) -> None:
    r = audit_mechanism(laplace, 0.0, 1.0, epsilon=1.0, samples=5_000)
    path = tmp_path / "audit.json"
    r.to_json(path)
    assert json.loads(path.read_text())["type"] == "secquant.audit.mechanism"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mechanism": 3}, "callable"),
        ({"mechanism": lambda x, rng, n: rng.random(n + 1)}, "n="),
        ({"mechanism": lambda x, rng, n: 1.0}, "scalar"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": -0.5}, "confidence"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"delta": -1e-9}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"samples": 999}, "samples"),
        ({"samples": 10.5}, "samples"),
        ({"selection_fraction": 1.0}, "selection_fraction"),
    ],
)
def test_bad_input_raises_config_error(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"mechanism": laplace, "x0": 0.0, "x1": 1.0, "epsilon": 1.0, "samples": 2_000}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match) as info:
        audit_mechanism(**args)
    assert isinstance(info.value, SecquantError) and isinstance(info.value, ValueError)
