"""Unit tests of the membership-audit building blocks: policies, attacks, metrics, one-run audit.

Oracles: closed forms (log-odds, softmax rounding), sklearn's ``roc_auc_score``,
the paper's printed p-value, binomial tail identities, and randomized response
whose true ε is known.  Statistical tests use fixed seeds; each states its
false-failure rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from secquant.audit.membership.attacks import AttackKind, lira_scores, loss_scores
from secquant.audit.membership.metrics import attack_metrics, auc, epsilon_bound_split, roc_curve, tpr_at_fpr
from secquant.audit.membership.one_run import epsilon_lower_bound, one_run_audit, p_value
from secquant.audit.membership.policies import (
    DiscreteGaussianScores,
    FullScores,
    RoundedScores,
    TopLabel,
    default_policies,
    features,
    parse_policy,
)
from secquant.errors import ConfigError, SecquantError

RNG = np.random.default_rng


# -- policies -----------------------------------------------------------------
def test_full_scores_phi_is_exact_log_odds() -> None:
    z = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    y = np.array([0, 2])
    f = features(FullScores(), z, y, RNG(0))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    py = p[[0, 1], y]
    np.testing.assert_allclose(f.phi, np.log(py / (1 - py)), rtol=1e-12)
    np.testing.assert_allclose(f.loss, -np.log(py), rtol=1e-12)
    assert not f.discrete


def test_full_scores_is_stable_for_huge_logits() -> None:
    f = features(FullScores(), np.array([[1000.0, 0.0]]), np.array([0]), RNG(0))
    assert f.phi[0] == pytest.approx(1000.0) and f.loss[0] == pytest.approx(0.0, abs=1e-300)


def test_rounded_scores_round_probabilities_to_k_bits() -> None:
    z = np.log(np.array([[0.7, 0.2, 0.1]]))
    r = RoundedScores(2).release(z, RNG(0))
    np.testing.assert_allclose(r, [[0.75, 0.25, 0.0]])
    f = features(RoundedScores(2), z, np.array([2]), RNG(0))
    assert f.phi[0] == pytest.approx(math.log(0.125 / 0.875))  # clipped at half a step


def test_top_label_releases_only_correctness() -> None:
    f = features(TopLabel(), np.array([[3.0, 1.0], [0.0, 2.0]]), np.array([0, 0]), RNG(0))
    np.testing.assert_array_equal(f.phi, [1.0, 0.0])
    assert f.discrete


def test_discrete_gaussian_noise_has_the_stated_scale() -> None:
    """Sample std of 20,000 noise draws within 3% of sigma; false-failure rate below 1e-6
    (the std estimate's relative error is about 0.5%, so 3% is six standard errors)."""
    z = np.zeros((10_000, 2))
    noisy = DiscreteGaussianScores(0.5, resolution_bits=5).release(z, RNG(1))
    assert np.allclose(noisy * 32, np.round(noisy * 32))  # on the grid
    assert abs(noisy.std() / 0.5 - 1) < 0.03 and abs(noisy.mean()) < 0.02


def test_parse_policy_round_trips_labels() -> None:
    for p in default_policies():
        assert parse_policy(p.label) == p
    assert parse_policy("dgauss:0.25") == DiscreteGaussianScores(0.25)


@pytest.mark.parametrize("bad", ["", "round", "round0", "dgauss-1", "noise", "round99"])
def test_parse_policy_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_policy(bad)


def test_policies_validate_fields_and_inputs() -> None:
    with pytest.raises(ConfigError, match="sigma"):
        DiscreteGaussianScores(0.0)
    with pytest.raises(ConfigError, match="grid steps"):
        DiscreteGaussianScores(500.0, resolution_bits=16)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        RoundedScores(True)
    with pytest.raises(ConfigError, match="labels"):
        features(FullScores(), np.zeros((2, 3)), np.array([0, 3]), RNG(0))
    with pytest.raises(SecquantError, match="shape"):
        features(FullScores(), np.zeros(3), np.array([0]), RNG(0))


# -- attacks ------------------------------------------------------------------
def _planted(n: int = 2000, shadows: int = 16, shift: float = 1.0, seed: int = 0):
    """phi = per-example difficulty + shift·member + N(0, 0.5²): LiRA's model exactly."""
    rng = RNG(seed)
    difficulty = rng.normal(0, 3, n)
    inc = rng.random((shadows + 1, n)) < 0.5
    phi = difficulty + shift * inc + rng.normal(0, 0.5, (shadows + 1, n))
    return phi, inc


def test_lira_beats_the_global_threshold_when_examples_differ() -> None:
    """With per-example difficulty (sd 3) far above the membership shift (1), a global threshold
    is near chance while LiRA's per-example calibration is not.  Margins (AUC > 0.8 vs < 0.6)
    exceed ten standard errors of AUC at n = 2000: false-failure rate below 1e-6."""
    phi, inc = _planted()
    online = lira_scores(phi[0], phi[1:], inc[1:], online=True)
    offline = lira_scores(phi[0], phi[1:], inc[1:], online=False)
    threshold = phi[0]
    for s in (online, offline):
        assert auc(*roc_curve(s, inc[0])) > 0.8
    assert auc(*roc_curve(threshold, inc[0])) < 0.6


def test_lira_on_labels_uses_bernoulli_rates() -> None:
    phi = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    inc = np.array([[True, True], [True, True], [False, False], [True, False], [False, False]])
    s = lira_scores(phi[0], phi[1:], inc[1:], online=True, discrete=True)
    # example 0: IN rate (2+1)/(2+2), OUT rate (0+1)/(2+2); target correct -> log(3/4 / 1/4)
    assert s[0] == pytest.approx(math.log(3.0))
    off = lira_scores(phi[0], phi[1:], inc[1:], online=False, discrete=True)
    assert off[0] == pytest.approx(-math.log(0.25)) and off[1] == 0.0


def test_lira_rejects_bad_shapes_and_missing_sides() -> None:
    with pytest.raises(ConfigError, match="shape"):
        lira_scores(np.zeros(3), np.zeros((2, 4)), np.zeros((2, 4), bool))
    with pytest.raises(ConfigError, match="left out"):
        lira_scores(np.zeros(3), np.zeros((2, 3)), np.ones((2, 3), bool))
    with pytest.raises(ConfigError, match="NaN"):
        lira_scores(np.array([np.nan, 0, 0]), np.zeros((2, 3)), np.eye(2, 3, dtype=bool))
    assert AttackKind("lira_online").needs_shadows and not AttackKind.LOSS.needs_shadows
    np.testing.assert_array_equal(loss_scores(np.array([1.0, 2.0])), [-1.0, -2.0])


# -- metrics ------------------------------------------------------------------
def test_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = RNG(3)
    members = rng.random(500) < 0.4
    scores = np.round(rng.normal(members * 0.7, 1.0), 1)  # many ties
    fpr, tpr = roc_curve(scores, members)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(members, scores), abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def test_tpr_at_fpr_known_answer() -> None:
    members = np.array([True] * 4 + [False] * 4)
    scores = np.array([8, 7, 3, 1, 6, 2, 0, -1], dtype=float)
    fpr, tpr = roc_curve(scores, members)
    assert tpr_at_fpr(fpr, tpr, 0.0) == 0.5  # two members above every non-member
    assert tpr_at_fpr(fpr, tpr, 0.25) == 0.75 and tpr_at_fpr(fpr, tpr, 0.5) == 1.0


def test_split_epsilon_is_zero_without_signal_and_positive_with_it() -> None:
    """No signal: the bound is valid at 95%, so a positive value has probability <= 5% (fixed seed).
    Perfect separation of 2000 examples: the bound is ln(1/FPR_upper) > 3; it cannot fail."""
    rng = RNG(4)
    members = rng.random(2000) < 0.5
    bound, _ = epsilon_bound_split(rng.normal(size=2000), members, confidence=0.95)
    assert bound.epsilon == 0.0
    strong, _ = epsilon_bound_split(members + rng.normal(0, 0.01, 2000), members)
    assert strong.epsilon > 3.0 and strong.count0 == 0
    m = attack_metrics(members.astype(float), members)
    assert m.auc == 1.0 and m.tpr_at[0.001] == 1.0 and "roc" in m.to_dict()


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match="both"):
        roc_curve(np.zeros(3), np.ones(3, bool))
    with pytest.raises(ConfigError, match="booleans"):
        roc_curve(np.zeros(3), np.array([0, 1, 0]))
    with pytest.raises(ConfigError, match="NaN"):
        roc_curve(np.array([0, np.inf, 1.0]), np.array([True, False, True]))


# -- one-run audit ------------------------------------------------------------
def test_p_value_matches_the_paper() -> None:
    # Steinke, Nasr, Jagielski (2023) §: 75 of 100 correct under eps = ln 3 has p ≈ 0.553.
    assert p_value(100, 100, 75, math.log(3), 0.0) == pytest.approx(0.553, abs=0.002)
    assert p_value(100, 100, 75, math.log(3), 0.0) == pytest.approx(stats.binom.sf(74, 100, 0.75))
    assert p_value(1000, 100, 75, math.log(3), 1e-4) > p_value(1000, 100, 75, math.log(3), 0.0)


def test_epsilon_bound_inverts_the_p_value() -> None:
    eps = epsilon_lower_bound(1000, 100, 90, 0.0, 0.05)
    assert p_value(1000, 100, 90, eps, 0.0) < 0.05 <= p_value(1000, 100, 90, eps + 1e-6, 0.0)
    assert epsilon_lower_bound(1000, 100, 50, 0.0, 0.05) == 0.0
    assert epsilon_lower_bound(1000, 0, 0, 0.0, 0.05) == 0.0


def test_one_run_stays_below_the_true_epsilon_of_randomized_response() -> None:
    """Canaries released by ε-randomized response (ε = 1); the auditor sees the bits.
    The bound is valid at 95%, so exceeding ε = 1 has probability <= 5%; the fixed seed
    makes it deterministic.  With ε = 4 it must detect leakage (ε_lb > 1.5; m = 4000)."""
    for eps, check in ((1.0, lambda b: b <= 1.0), (4.0, lambda b: b > 1.5)):
        rng = RNG(5)
        included = rng.random(4000) < 0.5
        keep = rng.random(4000) < math.exp(eps) / (1 + math.exp(eps))
        bits = np.where(keep, included, ~included).astype(float) + rng.normal(0, 1e-6, 4000)
        result = one_run_audit(bits, included, guess_fractions=(0.25, 0.5))
        assert check(result.epsilon), (eps, result)


def test_one_run_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="v <= r <= m"):
        p_value(10, 20, 5, 1.0, 0.0)
    with pytest.raises(ConfigError, match="guess_fractions"):
        one_run_audit(np.zeros(10), np.zeros(10, bool), guess_fractions=(0.7,))
    with pytest.raises(ConfigError, match="delta"):
        one_run_audit(np.zeros(10), np.zeros(10, bool), delta=1.0)
