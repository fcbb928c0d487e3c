"""The auditor confirms the released-sum mechanism, and catches an un-topped-up dropout.

The mechanism is the plaintext simulation of the release built from the same
encoding functions the clients run (decryption is exact, so the released
distribution is the same).  ``audit_mechanism`` flags a correct claim with
probability at most 1 - confidence = 5% (the false-failure rate of the first
check); the second check is a planted bug (1 of 10 noise shares), whose
expected lower bound (~1.5) is far above the claimed ε (~0.83).  Fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from secquant.audit import audit_mechanism
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.encoding import released_sum_mechanism

CFG = RoundConfig(n_clients=10, dim=1, clip_norm=1.0, granularity=0.1, sigma=32.0, modulus_bits=16, key_bits=2048)


@pytest.mark.slow
def test_full_noise_release_meets_its_claim() -> None:
    mech = released_sum_mechanism(CFG, np.zeros((9, 1)))
    result = audit_mechanism(mech, np.array([-1.0]), np.array([1.0]), epsilon=CFG.epsilon(), delta=CFG.delta,
                             samples=300_000, seed=0)
    assert not result.violation, result


def test_dropout_without_top_up_is_flagged() -> None:
    mech = released_sum_mechanism(CFG, np.zeros((9, 1)), noise_in_sum=1)
    result = audit_mechanism(mech, np.array([-1.0]), np.array([1.0]), epsilon=CFG.epsilon(), delta=CFG.delta,
                             samples=300_000, seed=0)
    assert result.violation and result.epsilon_lower_bound > CFG.epsilon()
