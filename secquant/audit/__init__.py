"""Differential-privacy audits: empirical ε lower bounds at a stated confidence (measurement only).

``audit_mechanism`` tests an (ε, δ) claim of a randomized mechanism on a
neighbouring pair; ``audit_pairs`` searches several pairs with one confidence
statement.  Modules:

* :mod:`.estimators`: Clopper–Pearson bounds, ε from probabilities or from TPR/FPR;
* :mod:`.outputs`, :mod:`.scorers`, :mod:`.events`: output kinds, scores and the
  event (witness) search;
* :mod:`.auditor`, :mod:`.result`: the audits and their results;
* :mod:`.cases`: the built-in mechanisms as audit cases (claim, pairs, expected verdict);
* :mod:`.membership`: membership inference against (quantized) models.

The mechanisms themselves and their exact integer noise are production code in
:mod:`secquant.dp`; ``secquant.audit.mechanisms`` and ``secquant.audit.samplers``
(and the two sampler names below) remain as aliases of it.  Everything is
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from secquant._lazy import lazy_getattr

_LAZY = {
    "audit_mechanism": "secquant.audit.auditor",
    "audit_pairs": "secquant.audit.pairs",
    "AuditSettings": "secquant.audit.auditor",
    "PairStrategy": "secquant.audit.pairs",
    "AuditResult": "secquant.audit.result",
    "PairSearchResult": "secquant.audit.result",
    "EpsilonBound": "secquant.audit.estimators",
    "clopper_pearson_lower": "secquant.audit.estimators",
    "clopper_pearson_upper": "secquant.audit.estimators",
    "epsilon_from_probabilities": "secquant.audit.estimators",
    "epsilon_from_rates": "secquant.audit.estimators",
    "epsilon_lower_bound_from_counts": "secquant.audit.estimators",
    "sample_discrete_gaussian": "secquant.dp.samplers",  # alias: the samplers are in secquant.dp
    "sample_discrete_laplace": "secquant.dp.samplers",
}

#: Subpackages reachable as attributes (``secquant.audit.membership.run_membership_audit``), imported on first access.
SUBPACKAGES = ("membership",)

__all__ = sorted(_LAZY)

_names = lazy_getattr(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    """Import a lazily exported name or a subpackage on first access (PEP 562).

    Raises:
        AttributeError: neither.
    """
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    return _names(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *SUBPACKAGES})
