"""Differential-privacy mechanisms: the noise that production code adds, and its accounting.

* :mod:`secquant.dp.samplers`: exact discrete Laplace and discrete Gaussian
  samplers (Canonne, Kamath and Steinke 2020), integer arithmetic only;
* :mod:`secquant.dp.accounting`: ε upper bounds from dp-accounting;
* :mod:`secquant.dp.mechanisms`: the mechanisms with their (ε, δ) claims,
  among them the distributed discrete Gaussian that secure aggregation
  (:mod:`secquant.protocol.aggregation`) adds;
* :mod:`secquant.dp.release`: release policies (what a client of a model sees).

Everything on the privacy-critical path imports from here, never from
:mod:`secquant.audit`, which only measures.  Names are imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from secquant._lazy import lazy_getattr

_MECHANISMS = (
    "AccountedMechanism", "DiscreteGaussianMechanism", "DiscreteLaplaceMechanism", "DistributedDiscreteGaussian",
    "DistributedSum", "FixedPointLaplace", "GaussianMechanism", "LaplaceMechanism", "PrivacyClaim",
    "RandomizedResponse", "RepeatedLaplace", "ReportNoisyMax", "SparseVector", "StochasticRounding", "SvtVariant",
)

_LAZY = {
    **{name: "secquant.dp.mechanisms" for name in _MECHANISMS},
    "bernoulli_exp_neg": "secquant.dp.samplers",
    "discrete_gaussian_sigma_squared": "secquant.dp.samplers",
    "sample_discrete_gaussian": "secquant.dp.samplers",
    "sample_discrete_laplace": "secquant.dp.samplers",
    "check_delta": "secquant.dp.accounting",
    "discrete_gaussian_epsilon": "secquant.dp.accounting",
    "epsilon_for_event": "secquant.dp.accounting",
    "epsilon_from_privacy_loss": "secquant.dp.accounting",
}

#: Modules reachable as attributes (``secquant.dp.samplers``), imported on first access.
SUBMODULES = ("accounting", "mechanisms", "release", "samplers")

#: Module of the release policies (``ReleasePolicy`` and the policies themselves);
#: every name in its ``__all__`` is an attribute of this package, resolved on access.
RELEASE_MODULE = "secquant.dp.release"

_static = lazy_getattr(__name__, _LAZY)


def _release_names() -> tuple[str, ...]:
    if importlib.util.find_spec(RELEASE_MODULE) is None:
        return ()
    return tuple(getattr(importlib.import_module(RELEASE_MODULE), "__all__", ()))


def __getattr__(name: str) -> Any:
    """Import a lazily exported name on first access (PEP 562).

    Raises:
        AttributeError: no such name (release policies resolve only once
            ``secquant/dp/release.py`` exists and lists them in ``__all__``).
    """
    if name in _LAZY:
        return _static(name)
    if name in SUBMODULES and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "__all__":  # ``from secquant.dp import *`` sees the release policies too
        return sorted({*_LAZY, *_release_names()})
    if not name.startswith("_") and name in _release_names():
        value = getattr(importlib.import_module(RELEASE_MODULE), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_release_names()})

