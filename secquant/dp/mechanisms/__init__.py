"""Mechanisms shipped with secquant, each with its claim from dp-accounting (or a cited paper).

Correct: :class:`LaplaceMechanism`, :class:`GaussianMechanism`,
:class:`DiscreteLaplaceMechanism`, :class:`DiscreteGaussianMechanism`,
:class:`RandomizedResponse`, :class:`StochasticRounding`,
:class:`FixedPointLaplace`, :class:`RepeatedLaplace`, :class:`ReportNoisyMax`,
:class:`SparseVector` (Alg. 1), :class:`DistributedSum` of a
:class:`DistributedDiscreteGaussian`.  Deliberately broken variants are flags
on the same classes (``return_value``, ``variant``, ``scale_noise``,
``reuse_noise``); :func:`builtin_cases` lists them all with their claims.
"""

from secquant.audit.mechanisms.base import AccountedMechanism, PrivacyClaim
from secquant.audit.mechanisms.catalogue import BuiltinCase, builtin_case, builtin_cases
from secquant.audit.mechanisms.distributed import DistributedDiscreteGaussian, DistributedSum
from secquant.audit.mechanisms.noise import (
    DiscreteGaussianMechanism,
    DiscreteLaplaceMechanism,
    FixedPointLaplace,
    GaussianMechanism,
    LaplaceMechanism,
    RandomizedResponse,
    RepeatedLaplace,
    StochasticRounding,
)
from secquant.audit.mechanisms.selection import ReportNoisyMax, SparseVector, SvtVariant

__all__ = [
    "AccountedMechanism",
    "BuiltinCase",
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
    "builtin_case",
    "builtin_cases",
]
