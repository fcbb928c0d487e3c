"""Exact integer samplers against their exact probability mass functions.

Goodness of fit by scipy's chi-square test on 200,000 draws at fixed seeds; each
test fails when p < 1e-4, so a correct sampler fails it with probability 1e-4.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from secquant.dp.mechanisms import DistributedDiscreteGaussian
from secquant.dp.samplers import (
    bernoulli_exp_neg,
    discrete_gaussian_sigma_squared,
    sample_discrete_gaussian,
    sample_discrete_laplace,
)
from secquant.errors import ConfigError


def _gof(draws: np.ndarray, log_pmf: np.ndarray, support: np.ndarray) -> float:
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    keep = pmf * draws.size >= 5  # pool the tails
    observed = np.array([np.count_nonzero(draws == k) for k in support[keep]] + [0], dtype=float)
    observed[-1] = draws.size - observed[:-1].sum()
    expected = np.concatenate([pmf[keep], [1 - pmf[keep].sum()]]) * draws.size
    if expected[-1] < 1e-9:
        observed, expected = observed[:-1], expected[:-1]
    expected *= observed.sum() / expected.sum()
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 3.5, 25.0])
def test_discrete_gaussian_fits_exact_pmf(sigma: float) -> None:
    y = sample_discrete_gaussian(sigma, 200_000, np.random.default_rng(11))
    assert y.dtype == np.int64
    k = np.arange(-int(12 * sigma) - 5, int(12 * sigma) + 6)
    s2 = float(discrete_gaussian_sigma_squared(sigma))
    assert _gof(y, -(k**2) / (2 * s2), k) > 1e-4


@pytest.mark.parametrize("a", [0.2, 1.0, 2.5])
def test_discrete_laplace_fits_exact_pmf(a: float) -> None:
    y = sample_discrete_laplace(a, 200_000, np.random.default_rng(12))
    k = np.arange(-int(40 / a) - 5, int(40 / a) + 6)
    assert _gof(y, -a * np.abs(k), k) > 1e-4


def test_bernoulli_exp_neg_frequencies() -> None:
    """Frequencies within 5 standard errors of exp(-γ); false-failure rate ~ 6e-7 per γ."""
    rng = np.random.default_rng(13)
    for num, den in [(0, 1), (1, 3), (1, 1), (7, 2), (25, 10)]:
        coins = bernoulli_exp_neg(np.full(100_000, num), den, rng)
        p = math.exp(-num / den)
        assert abs(coins.mean() - p) <= 5 * math.sqrt(p * (1 - p) / 1e5) + 1e-12


def test_sigma_squared_is_exact_for_simple_sigmas() -> None:
    assert discrete_gaussian_sigma_squared(3.5) == Fraction(49, 4)
    assert discrete_gaussian_sigma_squared(Fraction(1, 2)) == Fraction(1, 4)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1e5])
def test_discrete_gaussian_rejects_bad_sigma(bad: float) -> None:
    with pytest.raises(ConfigError):
        sample_discrete_gaussian(bad, 10, np.random.default_rng(0))


def test_sampler_rejects_bad_rng_and_size() -> None:
    with pytest.raises(ConfigError):
        sample_discrete_gaussian(1.0, 10, np.random.RandomState(0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        sample_discrete_laplace(1.0, -1, np.random.default_rng(0))


def test_distributed_discrete_gaussian_api() -> None:
    """Shares, messages and aggregation mod 2^b; accounting grows with dropouts."""
    cfg = DistributedDiscreteGaussian(sigma=2.0, n_clients=5, dim=3, modulus_bits=16)
    rng = np.random.default_rng(14)
    share = cfg.client_share(rng)
    assert share.shape == (3,) and share.dtype == np.int64
    xs = np.array([[1, 2, 3]] * 5)
    msgs = np.stack([cfg.client_message(x, rng) for x in xs])
    total = cfg.aggregate(msgs)
    assert np.all((total >= 0) & (total < 2**16))
    eps_all, eps_drop = cfg.epsilon(1e-5), cfg.epsilon(1e-5, surviving=3)
    assert 0 < eps_all < eps_drop < cfg.epsilon(1e-5, surviving=1)
    with pytest.raises(ConfigError):
        cfg.epsilon(1e-5, surviving=6)
    with pytest.raises(ConfigError):
        DistributedDiscreteGaussian(sigma=0.1, n_clients=2)
