"""Mechanisms shipped with secquant, each with its claim from dp-accounting (or a cited paper).

Correct: :class:`LaplaceMechanism`, :class:`GaussianMechanism`,
:class:`DiscreteLaplaceMechanism`, :class:`DiscreteGaussianMechanism`,
:class:`RandomizedResponse`, :class:`StochasticRounding`,
:class:`FixedPointLaplace`, :class:`RepeatedLaplace`, :class:`ReportNoisyMax`,
:class:`SparseVector` (Alg. 1), :class:`DistributedSum` of a
:class:`DistributedDiscreteGaussian`.  Deliberately broken variants are flags
on the same classes (``return_value``, ``variant``, ``scale_noise``,
``reuse_noise``); :func:`secquant.audit.cases.builtin_cases` lists them all
with their claims and the verdict an audit must reach.

Modules: :mod:`.base` (the claim, argument checks), :mod:`.noise` (additive
and rounding noise), :mod:`.selection` (report-noisy-max, sparse vector),
:mod:`.distributed` (the distributed discrete Gaussian of secure aggregation).
"""

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

__all__ = [
    "AccountedMechanism",
    "DiscreteGaussianMechanism",
    "DiscreteLaplaceMechanism",
    "DistributedDiscreteGaussian",
    "DistributedSum",
    "FixedPointLaplace",
    "GaussianMechanism",
    "LaplaceMechanism",
    "PrivacyClaim",
    "RandomizedResponse",
    "RepeatedLaplace",
    "ReportNoisyMax",
    "SparseVector",
    "StochasticRounding",
    "SvtVariant",
]
