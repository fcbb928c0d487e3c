"""Differential-privacy audits: empirical ε lower bounds at a stated confidence.

``audit_mechanism`` tests an (ε, δ) claim of a randomized mechanism on a
neighbouring pair; ``audit_pairs`` searches several pairs with one confidence
statement.  The shared estimators (Clopper–Pearson bounds, ε from
probabilities or from TPR/FPR) live in :mod:`secquant.audit.estimators`; the
built-in mechanisms in :mod:`secquant.audit.mechanisms`; exact integer noise in
:mod:`secquant.audit.samplers`.  Everything is imported on first use.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "audit_mechanism": "secquant.audit.auditor",
    "audit_pairs": "secquant.audit.auditor",
    "AuditSettings": "secquant.audit.auditor",
    "PairStrategy": "secquant.audit.auditor",
    "AuditResult": "secquant.audit.result",
    "PairSearchResult": "secquant.audit.result",
    "EpsilonBound": "secquant.audit.estimators",
    "clopper_pearson_lower": "secquant.audit.estimators",
    "clopper_pearson_upper": "secquant.audit.estimators",
    "epsilon_from_probabilities": "secquant.audit.estimators",
    "epsilon_from_rates": "secquant.audit.estimators",
    "epsilon_lower_bound_from_counts": "secquant.audit.estimators",
    "sample_discrete_gaussian": "secquant.audit.samplers",
    "sample_discrete_laplace": "secquant.audit.samplers",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
