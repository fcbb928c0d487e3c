"""Release policies (secquant.dp.release): one definition for the service, membership and extraction audits.

Oracles: hand-computed roundings, the exact power-of-two equivalence of
``release`` on floats and ``scaled(...).apply`` on integers (same noise draws),
the analytic Gaussian privacy curve (Balle and Wang 2018) for the accountant's
ε, and JSON round trips.  The statistical test states its false-failure rate.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from secquant.audit.membership import policies as membership
from secquant.dp.release import (
    RELEASE_POLICY_TYPES,
    DiscreteGaussianLogits,
    FullLogits,
    ReleaseForm,
    RoundedLogits,
    RoundedProbabilities,
    TopLabel,
    parse_policy,
    policy_from_json,
)
from secquant.errors import ConfigError

ALL = (FullLogits(), RoundedLogits(-3), DiscreteGaussianLogits(2.0, resolution_bits=-1, sensitivity=2, delta=1e-6),
       RoundedProbabilities(3), TopLabel())


def test_membership_audit_uses_the_same_types() -> None:
    assert membership.FullScores is FullLogits
    assert membership.RoundedScores is RoundedProbabilities
    assert membership.DiscreteGaussianScores is DiscreteGaussianLogits
    assert membership.TopLabel is TopLabel
    assert membership.parse_policy is parse_policy
    assert not hasattr(membership, "_Policy")


def test_rounding_integer_outputs_drops_low_bits_half_up() -> None:
    y = np.array([[12, 11, -4, -5, 4, 0, 7]])
    np.testing.assert_array_equal(RoundedLogits(-3).apply(y, np.random.default_rng(0)), [[16, 8, 0, -8, 8, 0, 8]])
    np.testing.assert_array_equal(RoundedLogits(0).apply(y, np.random.default_rng(0)), y)
    np.testing.assert_array_equal(FullLogits().apply(y, np.random.default_rng(0)), y)
    assert RoundedLogits(-3).apply(y, np.random.default_rng(0)).dtype == np.int64


def test_rounding_float_logits_keeps_k_fractional_bits() -> None:
    z = np.array([[0.125, 0.124, -0.125, 1.3]])
    np.testing.assert_array_equal(RoundedLogits(2).release(z, np.random.default_rng(0)), [[0.25, 0.0, 0.0, 1.25]])


@pytest.mark.parametrize("policy", [RoundedLogits(3), DiscreteGaussianLogits(0.75, resolution_bits=4)])
def test_float_release_equals_scaled_integer_apply(policy: RoundedLogits | DiscreteGaussianLogits) -> None:
    """With 2**10 steps per logit, release() on logits and scaled(10).apply() on steps agree exactly
    (the same generator state gives the same noise)."""
    y = np.random.default_rng(5).integers(-(2**20), 2**20, size=(50, 4))
    floats = policy.release(y / 2.0**10, np.random.default_rng(9))
    ints = policy.scaled(10).apply(y, np.random.default_rng(9))
    np.testing.assert_array_equal(floats * 2.0**10, ints)


def test_discrete_gaussian_noise_has_the_stated_scale_on_integers() -> None:
    """20,000 draws: sample std within 3% of σ·2**4 steps (six standard errors of the std estimate);
    false-failure rate below 1e-6.  Every value is a multiple of the 16-step grid."""
    policy = DiscreteGaussianLogits(80.0, resolution_bits=-4)  # 5 grid steps of 16
    out = policy.apply(np.full((10_000, 2), 1000), np.random.default_rng(3))
    assert np.all(out % 16 == 0)
    noise = out - 1008  # 1000 rounds half up to 1008
    assert abs(noise.std() / 80.0 - 1) < 0.03 and abs(noise.mean()) < 2.0


@pytest.mark.parametrize("sigma", [3.0, 5.0, 12.0])
def test_accountant_epsilon_matches_the_analytic_gaussian_curve(sigma: float) -> None:
    """For σ >= 3 grid steps the discrete Gaussian's (ε, δ) curve is within a few percent of the
    continuous one: δ_Gauss(ε) = Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ)."""
    policy = DiscreteGaussianLogits(sigma, resolution_bits=0)
    eps, delta = policy.privacy()
    analytic = norm.cdf(0.5 / sigma - eps * sigma) - math.exp(eps) * norm.cdf(-0.5 / sigma - eps * sigma)
    assert delta == 1e-5 and abs(analytic / delta - 1) < 0.1
    assert policy.scaled(17).privacy() == (eps, delta)  # re-expressing units never changes ε
    assert DiscreteGaussianLogits(sigma, resolution_bits=0, sensitivity=2).privacy()[0] > eps


def test_epsilon_at_most_one_needs_about_four_grid_steps() -> None:
    assert DiscreteGaussianLogits(4.0, resolution_bits=0).privacy()[0] <= 1.0
    assert DiscreteGaussianLogits(3.0, resolution_bits=0).privacy()[0] > 1.0


def test_top_label_and_probabilities() -> None:
    y = np.array([[3, 9, 1], [5, 5, 0]])
    np.testing.assert_array_equal(TopLabel().apply(y, np.random.default_rng(0)), [1, 0])
    p = RoundedProbabilities(2).release(np.log(np.array([[0.7, 0.2, 0.1]])), np.random.default_rng(0))
    np.testing.assert_allclose(p, [[0.75, 0.25, 0.0]])
    assert TopLabel.form is ReleaseForm.LABELS and RoundedProbabilities.form is ReleaseForm.PROBABILITIES
    with pytest.raises(ConfigError, match="release\\(\\) on float logits"):
        RoundedProbabilities(2).apply(y, np.random.default_rng(0))


@pytest.mark.parametrize("policy", ALL, ids=lambda p: p.label)
def test_json_round_trip(policy: object) -> None:
    text = json.dumps(policy.to_json())  # type: ignore[attr-defined]
    back = policy_from_json(json.loads(text))
    assert back == policy and type(back) is type(policy)


@pytest.mark.parametrize("bad", [
    None, {}, {"kind": "noise"}, {"kind": "full", "sigma": 1}, {"kind": "rounded_logits", "bits": 99},
    {"kind": "discrete_gaussian", "sigma": -1}, {"kind": "discrete_gaussian", "sigma": 1, "delta": 1.5},
])
def test_json_refuses_malformed_policies(bad: object) -> None:
    with pytest.raises(ConfigError):
        policy_from_json(bad)


def test_labels_parse_back() -> None:
    for p in (FullLogits(), RoundedLogits(4), RoundedLogits(-2), DiscreteGaussianLogits(0.5), RoundedProbabilities(3), TopLabel()):
        assert parse_policy(p.label) == p
    with pytest.raises(ConfigError, match="unknown release policy"):
        parse_policy("gauss")


def test_apply_refuses_fractional_grids_and_floats() -> None:
    with pytest.raises(ConfigError, match="scaled"):
        DiscreteGaussianLogits(1.0).apply(np.zeros((2, 2), dtype=np.int64), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="integer outputs"):
        FullLogits().apply(np.zeros((2, 2)), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="sampler's limit"):
        DiscreteGaussianLogits(200.0, resolution_bits=6)
    with pytest.raises(ConfigError, match="finite"):
        FullLogits().release(np.array([[np.nan, 0.0]]), np.random.default_rng(0))
    assert len(RELEASE_POLICY_TYPES) == 5


def test_per_query_epsilon_composes_over_outputs() -> None:
    """k Gaussian coordinates of σ compose like one of σ/√k (exact for the continuous Gaussian;
    within 5% here since σ >= 4 grid steps)."""
    policy = DiscreteGaussianLogits(8.0, resolution_bits=0)
    eps2 = policy.privacy(2)[0]
    eps1_narrow = DiscreteGaussianLogits(8.0 / math.sqrt(2), resolution_bits=0).privacy(1)[0]
    assert policy.privacy(1)[0] < eps2 < policy.privacy(10)[0]
    assert abs(eps2 / eps1_narrow - 1) < 0.05


def test_calibrated_noise_is_the_least_that_meets_epsilon() -> None:
    noisy = DiscreteGaussianLogits.calibrated(1.0, outputs=2, resolution_bits=0)
    assert noisy.privacy(2)[0] <= 1.0
    assert DiscreteGaussianLogits(noisy.sigma * 0.98, resolution_bits=0).privacy(2)[0] > 1.0
    assert len(f"{noisy.sigma:g}") <= 5  # 3 significant digits: a readable label
    with pytest.raises(ConfigError, match="epsilon"):
        DiscreteGaussianLogits.calibrated(0.0)
