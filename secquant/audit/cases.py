"""The built-in mechanisms as audit cases: mechanism, claim, neighbouring pairs, expected verdict.

Used by ``secquant audit mechanism``, the tests and the example.  Correct
mechanisms claim exactly what dp-accounting (or, where it has no model, the
cited paper) certifies; broken ones claim what their buggy implementation would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secquant.dp.mechanisms.base import AccountedMechanism, PrivacyClaim
from secquant.dp.mechanisms.distributed import DistributedDiscreteGaussian, DistributedSum
from secquant.dp.mechanisms.noise import (
    DiscreteGaussianMechanism,
    DiscreteLaplaceMechanism,
    FixedPointLaplace,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    RepeatedLaplace,
    StochasticRounding,
)
from secquant.dp.mechanisms.selection import ReportNoisyMax, SparseVector, SvtVariant
from secquant.errors import ConfigError

__all__ = ["BuiltinCase", "builtin_case", "builtin_cases"]


@dataclass(frozen=True)
class BuiltinCase:
    """One built-in audit case.

    Attributes:
        name: Short identifier (``laplace``, ``svt_alg3``, ...).
        mechanism: The mechanism.
        claim: The (ε, δ) claim under test and its source.
        pairs: Neighbouring pairs to search.
        expect_violation: True for the deliberately broken mechanisms.
        accountant_epsilon: dp-accounting's ε at the claim's δ for the declared
            noise (``None`` when dp-accounting has no model of the mechanism).
        note: One line on what the case shows.
    """

    name: str
    mechanism: AccountedMechanism
    claim: PrivacyClaim
    pairs: tuple[tuple[Any, Any], ...]
    expect_violation: bool
    accountant_epsilon: float | None
    note: str


def _accounted(name: str, mech: Any, delta: float, pairs: tuple[tuple[Any, Any], ...], note: str) -> BuiltinCase:
    eps = float(mech.accountant_epsilon(delta))
    claim = PrivacyClaim(eps, delta, "dp-accounting")
    return BuiltinCase(name, mech, claim, pairs, False, eps, note)


_SVT_PAIRS: tuple[tuple[Any, Any], ...] = (
    ((0,) * 5 + (1,) * 5, (1,) * 5 + (0,) * 5),
    ((0,) * 10, (1,) * 9 + (0,)),
)
_TWO_RELEASE_PAIRS: tuple[tuple[Any, Any], ...] = (((0.0, 0.0), (1.0, 0.0)), ((0.0, 0.0), (1.0, 1.0)))
_RNM_PAIRS: tuple[tuple[Any, Any], ...] = (
    ((0,) * 5, (1,) * 5),
    ((0,) * 5, (1,) + (0,) * 4),
    ((1,) + (0,) * 4, (0,) + (1,) * 4),
)


def _correct() -> list[BuiltinCase]:
    ddg = DistributedDiscreteGaussian(sigma=2.0, n_clients=4, modulus_bits=16)
    rnm = ReportNoisyMax(epsilon=1.0)
    return [
        _accounted("laplace", LaplaceMechanism(1.0), 0.0, ((0.0, 1.0),), "Lap(1), ε = 1"),
        _accounted("gaussian", GaussianMechanism(1.0), 1e-5, ((0.0, 1.0),), "N(0,1) at δ = 1e-5"),
        _accounted("discrete_laplace", DiscreteLaplaceMechanism(0.5, 2), 0.0, ((0, 2),), "DLap(1/2), Δ = 2"),
        _accounted(
            "discrete_gaussian_mod_2^16", DiscreteGaussianMechanism(2.0, 1, 2**16), 1e-5,
            ((0, 1), (2**16 - 1, 0)), "exact CKS sampler, wrap-around pair included",
        ),
        _accounted("randomized_response", RandomizedResponse(4, 0.5), 0.0, ((0, 1),), "4 buckets, p = 1/2"),
        _accounted(
            "stochastic_rounding", StochasticRounding(16.0, 0.25), 0.0, ((0.25 / 16, 0.75 / 16),),
            "floor(Cx + U) on one cell ≡ binary RR",
        ),
        _accounted(
            "distributed_dg_mod_2^16", DistributedSum(ddg), 1e-5, (((0, 0, 0, 0), (1, 0, 0, 0)),),
            "4 clients, σ = 2 each (KLS Prop. 14)",
        ),
        _accounted(
            "distributed_dg_dropout", DistributedSum(ddg, surviving=2), 1e-5, (((0, 0, 0, 0), (1, 0, 0, 0)),),
            "2 of 4 clients survive",
        ),
        _accounted(
            "fixed_point_laplace", FixedPointLaplace(16.0, 1.0, 1.0), 0.0, ((0.0, 1.0),), "noise scaled by C = 16",
        ),
        _accounted("two_laplace_releases", RepeatedLaplace(2.0), 0.0, _TWO_RELEASE_PAIRS, "fresh noise"),
        BuiltinCase(
            "report_noisy_max_index", rnm, PrivacyClaim(1.0, 0.0, "Dwork & Roth 2014, Claim 3.9"), _RNM_PAIRS,
            False, rnm.accountant_epsilon(0.0, 5), "index of the noisy max of 5 queries",
        ),
        BuiltinCase(
            "svt_alg1", SparseVector(1.0, variant=SvtVariant.ALG1),
            PrivacyClaim(1.0, 0.0, "Lyu, Su, Li 2017, Thm. 2"), _SVT_PAIRS, False, None, "Lyu et al. Alg. 1, c = 1",
        ),
    ]


def _broken() -> list[BuiltinCase]:
    gauss = GaussianMechanism(1.0)
    eps_gauss = gauss.accountant_epsilon(1e-2)
    unscaled = FixedPointLaplace(16.0, 1.0, 1.0, scale_noise=False)
    reused = RepeatedLaplace(2.0, reuse_noise=True)
    rnm = ReportNoisyMax(epsilon=1.0, return_value=True)
    cases = [
        BuiltinCase(
            "noisy_max_value", rnm, PrivacyClaim(1.0, 0.0, "bug: value instead of index"), _RNM_PAIRS,
            True, rnm.accountant_epsilon(0.0, 5), "returns the noisy maximum itself",
        ),
        BuiltinCase(
            "gaussian_claimed_pure", gauss, PrivacyClaim(eps_gauss, 0.0, "bug: ε of δ = 1e-2 claimed at δ = 0"),
            ((0.0, 1.0),), True, gauss.accountant_epsilon(0.0), "Gaussian sold as pure ε-DP",
        ),
        BuiltinCase(
            "fixed_point_laplace_unscaled", unscaled, PrivacyClaim(1.0, 0.0, "bug: noise not multiplied by C"),
            ((0.0, 1.0),), True, unscaled.accountant_epsilon(0.0), "noise 16x too small",
        ),
        BuiltinCase(
            "noise_reused", reused, PrivacyClaim(1.0, 0.0, "bug: one noise draw for two releases"),
            _TWO_RELEASE_PAIRS, True, reused.accountant_epsilon(0.0), "y1 - y2 is exact",
        ),
    ]
    for variant in (SvtVariant.ALG3, SvtVariant.ALG5, SvtVariant.ALG6):
        cases.append(
            BuiltinCase(
                f"svt_{variant.value}", SparseVector(1.0, variant=variant),
                PrivacyClaim(1.0, 0.0, "as claimed by its authors; Lyu et al. 2017: ∞-DP"), _SVT_PAIRS,
                True, None, f"Lyu et al. {variant.name.title().replace('Alg', 'Alg. ')}",
            )
        )
    return cases


def builtin_cases() -> tuple[BuiltinCase, ...]:
    """Every built-in case: correct mechanisms first, then the broken ones."""
    return tuple(_correct() + _broken())


def builtin_case(name: str) -> BuiltinCase:
    """The built-in case called ``name``.

    Raises:
        ConfigError: no such case (the message lists the names).
    """
    cases = {c.name: c for c in builtin_cases()}
    if name not in cases:
        raise ConfigError(f"unknown built-in mechanism {name!r}; choose from {', '.join(cases)}")
    return cases[name]
