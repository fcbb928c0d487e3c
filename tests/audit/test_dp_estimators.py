"""Clopper–Pearson bounds and ε formulas: known answers and a coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secquant.audit.estimators import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    epsilon_from_probabilities,
    epsilon_from_rates,
    epsilon_lower_bound_from_counts,
    joint_alpha,
)
from secquant.errors import ConfigError


@pytest.mark.parametrize("k,n", [(1, 10), (30, 1000), (999, 1000), (5, 5)])
def test_clopper_pearson_matches_scipy_binomtest(k: int, n: int) -> None:
    lo = stats.binomtest(k, n, alternative="greater").proportion_ci(0.9, method="exact").low
    hi = stats.binomtest(k, n, alternative="less").proportion_ci(0.9, method="exact").high
    assert clopper_pearson_lower(k, n, 0.1) == pytest.approx(lo, rel=1e-9, abs=1e-12)
    assert clopper_pearson_upper(k, n, 0.1) == pytest.approx(hi, rel=1e-9, abs=1e-12)


def test_clopper_pearson_edges() -> None:
    assert clopper_pearson_lower(0, 100, 0.05) == 0.0
    assert clopper_pearson_upper(100, 100, 0.05) == 1.0
    assert clopper_pearson_upper(0, 1000, 0.05) == pytest.approx(1 - 0.05 ** (1 / 1000))
    arr = clopper_pearson_lower(np.array([0, 1, 2]), 10, 0.05)
    assert isinstance(arr, np.ndarray) and arr.shape == (3,) and np.all(np.diff(arr) > 0)


def test_epsilon_formulas_known_answers() -> None:
    assert epsilon_from_probabilities(0.5, 0.5 / math.e) == pytest.approx(1.0)
    assert epsilon_from_probabilities(0.5 + 0.1, 0.5 / math.e, delta=0.1) == pytest.approx(1.0)
    assert epsilon_from_probabilities(0.05, 0.1, delta=0.1) == 0.0  # p1 <= δ: no evidence
    assert epsilon_from_probabilities(0.3, 0.0) == math.inf
    # complement: TPR=0.5, FPR=0.1 -> max(ln 5, ln(0.9/0.5))
    assert epsilon_from_rates(0.5, 0.1) == pytest.approx(math.log(5))
    assert epsilon_from_rates(0.99, 0.5) == pytest.approx(math.log(0.5 / 0.01))


def test_joint_alpha_is_exact_for_independent_bounds() -> None:
    a = joint_alpha(0.95, 2)
    assert (1 - a) ** 2 == pytest.approx(0.95)
    assert a > 0.025  # better than Bonferroni


def test_bound_is_honest_in_simulation() -> None:
    """Coverage of the ε bound for an event whose true ratio is exactly e^1.

    Oracle: the bound exceeds the true ε only when a Clopper–Pearson bound
    fails, probability <= 5%.  4000 simulated experiments: the test fails if more
    than 6.5% exceed, false-failure rate < 1e-4 (binomial tail) if the guarantee holds.
    """
    rng = np.random.default_rng(7)
    p0, n = 0.01, 20_000
    p1 = math.e * p0
    k1 = rng.binomial(n, p1, 4000)
    k0 = rng.binomial(n, p0, 4000)
    alpha = joint_alpha(0.95, 2)
    eps = epsilon_from_rates(clopper_pearson_lower(k1, n, alpha), clopper_pearson_upper(k0, n, alpha))
    exceed = float(np.mean(np.asarray(eps) > 1.0))
    assert exceed <= 0.065
    assert stats.binom.sf(260, 4000, 0.05) < 1e-4


def test_counts_bound_fields_and_json() -> None:
    b = epsilon_lower_bound_from_counts(500, 1000, 100, 1000, delta=0.0, confidence=0.95)
    assert 0 < b.epsilon < b.point_estimate == pytest.approx(math.log(5))
    assert b.p1_lower < b.p1 and b.p0_upper > b.p0
    assert b.to_dict()["count1"] == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.0},
        {"confidence": 0.0},
        {"confidence": 1.5},
        {"delta": -0.1},
        {"delta": 1.0},
        {"count1": 11},
    ],
)
def test_estimator_rejects_bad_input(kwargs: dict[str, float]) -> None:
    args = {"count1": 5, "samples1": 10, "count0": 1, "samples0": 10, "delta": 0.0, "confidence": 0.95}
    args.update(kwargs)
    with pytest.raises(ConfigError):
        epsilon_lower_bound_from_counts(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        epsilon_lower_bound_from_counts(**args)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 10**6), frac=st.floats(0, 1), alpha=st.floats(1e-6, 0.5))
def test_clopper_pearson_brackets_the_estimate(n: int, frac: float, alpha: float) -> None:
    """Known property: lower <= k/n <= upper, and both lie in [0, 1]."""
    k = int(round(frac * n))
    lo, hi = clopper_pearson_lower(k, n, alpha), clopper_pearson_upper(k, n, alpha)
    assert 0.0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1.0


@settings(max_examples=200, deadline=None)
@given(p1=st.floats(0, 1), p0=st.floats(1e-9, 1), delta=st.floats(0, 0.5))
def test_epsilon_bound_never_exceeds_what_the_probabilities_allow(p1: float, p0: float, delta: float) -> None:
    """Oracle: if p1 <= e^ε p0 + δ at ε = epsilon_from_probabilities(...) the formula is tight and >= 0."""
    eps = epsilon_from_probabilities(p1, p0, delta)
    assert eps >= 0.0
    assert p1 <= math.exp(eps) * p0 + delta + 1e-9
