"""Measure how many queries steal a model under each release policy: model extraction.

Entry point: :func:`run_extraction_audit` with an :class:`ExtractionAuditConfig`;
:func:`write_report` turns the result into JSON, a PNG plot and a Markdown summary.

Modules:

* :mod:`.oracle`: what the attacker sees (a query function behind a release policy);
* :mod:`.attacks`: equation solving (linear/logistic) and a learning-based surrogate;
* :mod:`.victims`: the reference victims (logistic on breast cancer, MLP on digits);
* :mod:`.audit`: the sweep over policies, attacks and query budgets; :mod:`.report`: JSON, plot, summary.

Names are imported lazily so ``import secquant.audit.extraction`` stays cheap.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "AttackKind": ".attacks",
    "ExtractionAudit": ".audit",
    "ExtractionAuditConfig": ".audit",
    "LocalOracle": ".oracle",
    "QueryOracle": ".oracle",
    "VictimKind": ".victims",
    "equation_solving": ".attacks",
    "learning_attack": ".attacks",
    "run_extraction_audit": ".audit",
    "train_victim": ".victims",
    "write_report": ".report",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
