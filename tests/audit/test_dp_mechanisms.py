"""Acceptance: built-in correct mechanisms are not flagged, broken ones are.

Oracles: dp-accounting (or the cited paper) for the correct claims; planted
bugs (Lyu–Su–Li 2017 Table 1, unscaled noise, reused noise, Gaussian sold as
pure DP, noisy max value) that must be caught.  Each audit runs at confidence
0.95, so a correct mechanism is flagged with probability at most 5% per fixed
seed (false-failure rate of each "not flagged" test <= 5%; the seeds used were
checked once and are fixed).  For broken ones, the true ε exceeds the claim by
a wide margin (lower bounds 1.7x–12x the claim at these sizes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from secquant.audit import audit_mechanism, audit_pairs
from secquant.audit.cases import builtin_case, builtin_cases
from secquant.dp.mechanisms import (
    DiscreteGaussianMechanism,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    StochasticRounding,
)
from secquant.errors import ConfigError

CASES = builtin_cases()
SAMPLES = 200_000


def test_laplace_epsilon_one_reaches_0_9_with_a_million_samples() -> None:
    """Issue acceptance: Lap(1) (ε = 1), 10^6 draws per side, bound >= 0.9 and <= 1."""
    r = audit_mechanism(LaplaceMechanism(1.0), 0.0, 1.0, epsilon=1.0, samples=1_000_000, seed=0)
    assert 0.9 <= r.epsilon_lower_bound <= 1.0 and not r.violation


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_builtin_verdicts(case) -> None:  # type: ignore[no-untyped-def]
    res = audit_pairs(
        case.mechanism, case.pairs, case.claim.epsilon, case.claim.delta, samples=SAMPLES, seed=0, name=case.name
    )
    assert res.violation == case.expect_violation, str(res)
    if not case.expect_violation:
        assert res.epsilon_lower_bound <= case.claim.epsilon
        if case.accountant_epsilon is not None:  # cross-check: never above the accountant
            assert res.epsilon_lower_bound <= case.accountant_epsilon + 1e-9
    else:
        assert res.epsilon_lower_bound > 1.25 * case.claim.epsilon


def test_accountant_values_match_dp_accounting_directly() -> None:
    import dp_accounting as dpa
    from dp_accounting.pld import privacy_loss_distribution as pld

    assert LaplaceMechanism(2.0).accountant_epsilon(0.0) == pytest.approx(0.5, abs=1e-6)
    gauss = dpa.pld.PLDAccountant(dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    gauss.compose(dpa.GaussianDpEvent(1.0))
    assert GaussianMechanism(1.0).accountant_epsilon(1e-5) == pytest.approx(gauss.get_epsilon(1e-5), abs=1e-3)
    assert GaussianMechanism(1.0).accountant_epsilon(0.0) == math.inf
    dg = pld.from_discrete_gaussian_mechanism(2.0, sensitivity=1).get_epsilon_for_delta(1e-5)
    assert DiscreteGaussianMechanism(2.0).accountant_epsilon(1e-5) == pytest.approx(dg, abs=1e-3)
    assert RandomizedResponse(4, 0.5).accountant_epsilon(0.0) == pytest.approx(math.log(5), abs=1e-3)
    assert StochasticRounding(16.0, 0.25).accountant_epsilon(0.0) == pytest.approx(math.log(3), abs=1e-3)


def test_mechanisms_return_n_outputs_and_validate_input() -> None:
    rng = np.random.default_rng(0)
    for case in CASES:
        out = np.asarray(case.mechanism(case.pairs[0][0], rng, 7))
        assert out.shape[0] == 7, case.name
    with pytest.raises(ConfigError):
        RandomizedResponse(4, 0.5)(7, rng, 3)  # bucket outside [0, 4)
    with pytest.raises(ConfigError):
        StochasticRounding(16.0, 0.25)(0.5, rng, 3)  # outside the claimed domain
    with pytest.raises(ConfigError):
        LaplaceMechanism(-1.0)
    with pytest.raises(ConfigError):
        builtin_case("nope")


def test_discrete_gaussian_mod_wraps_into_the_window() -> None:
    out = DiscreteGaussianMechanism(3.0, 1, 2**16)(0, np.random.default_rng(1), 10_000)
    assert out.min() >= 0 and out.max() < 2**16 and np.any(out > 2**15)  # negative noise wrapped
