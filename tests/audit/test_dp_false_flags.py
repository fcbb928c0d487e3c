"""False-flag rate of the auditor on correct mechanisms across 20 seeds.

Each mechanism below satisfies its claim exactly (tight claims from
dp-accounting), the hardest case for the false-flag guarantee.  The auditor
promises that a correct claim is flagged with probability at most
``1 - confidence`` per audit, so over 20 independent seeds the number of flags
is stochastically below Binomial(20, 1 - confidence).

Thresholds and false-failure rates (if the guarantee holds):
* confidence 0.95: at most 3 flags of 20 per mechanism, P[Binom(20, .05) >= 4] = 1.6%;
* confidence 0.80: at most 8 flags of 20, P[Binom(20, .2) >= 9] = 1.0%.
"""

from __future__ import annotations

import pytest
from scipy import stats

from secquant.audit import audit_mechanism
from secquant.dp.mechanisms import (
    DiscreteLaplaceMechanism,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    StochasticRounding,
)

SEEDS = range(20)
CASES = [
    ("laplace", LaplaceMechanism(1.0), 0.0, 1.0, 0.0),
    ("gaussian", GaussianMechanism(1.0), 0.0, 1.0, 1e-2),
    ("discrete_laplace", DiscreteLaplaceMechanism(1.0, 1), 0, 1, 0.0),
    ("randomized_response", RandomizedResponse(2, 0.5), 0, 1, 0.0),
    ("stochastic_rounding", StochasticRounding(16.0, 0.25), 0.25 / 16, 0.75 / 16, 0.0),
]
LIMITS = {0.95: 3, 0.80: 8}


def test_limits_have_the_stated_false_failure_rates() -> None:
    assert stats.binom.sf(LIMITS[0.95], 20, 0.05) < 0.017
    assert stats.binom.sf(LIMITS[0.80], 20, 0.20) < 0.011


@pytest.mark.parametrize("confidence", [0.95, 0.80])
@pytest.mark.parametrize("name,mech,x0,x1,delta", CASES, ids=[c[0] for c in CASES])
def test_false_flags_within_what_confidence_allows(name, mech, x0, x1, delta, confidence) -> None:  # type: ignore[no-untyped-def]
    eps = mech.accountant_epsilon(delta)
    flags = sum(
        audit_mechanism(mech, x0, x1, epsilon=eps, delta=delta, samples=20_000, confidence=confidence, seed=s).violation
        for s in SEEDS
    )
    assert flags <= LIMITS[confidence], f"{name}: {flags} of 20 flagged at confidence {confidence}"
