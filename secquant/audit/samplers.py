"""Former home of the exact integer noise samplers, kept so that existing imports keep working.

The samplers are production code (secure aggregation adds their noise) and
live in :mod:`secquant.dp.samplers`; names here resolve lazily to it.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    name: "secquant.dp.samplers"
    for name in ("MAX_DISCRETE_GAUSSIAN_SIGMA", "bernoulli_exp_neg", "discrete_gaussian_sigma_squared",
                 "sample_discrete_gaussian", "sample_discrete_laplace")
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
