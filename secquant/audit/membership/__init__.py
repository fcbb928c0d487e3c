"""Measure what a (quantized) model leaks about its training data: membership inference.

Entry point: :func:`run_membership_audit` with a :class:`MembershipAuditConfig`;
:func:`write_report` turns the result into JSON, PNG plots and a Markdown summary.

Modules (each small and importable on its own):

* :mod:`.policies`: what the client sees (full scores, rounded, top-1, discrete Gaussian noise);
* :mod:`.attacks`: loss/confidence thresholds, LiRA online and offline;
* :mod:`.metrics`: ROC, AUC, TPR at 0.1 % / 1 % FPR, ε lower bound (shared estimators);
* :mod:`.one_run`: the one-run audit of Steinke, Nasr and Jagielski (2023);
* :mod:`.targets`, :mod:`.training`: float, ``quantize_model`` and DP-SGD targets
  (trained by :func:`secquant.training.train_classifier`);
* :mod:`.shadows`: parallel training (joblib, or Ray) with a progress bar;
* :mod:`.config`: what an audit does; :mod:`.audit`: the orchestration;
  :mod:`.result`: its rows; :mod:`.report`: JSON, plots, summary.

Names are imported lazily so ``import secquant.audit.membership`` stays cheap.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "AttackKind": ".attacks",
    "AuditRow": ".result",
    "Backend": ".shadows",
    "CanarySpec": ".config",
    "DPSpec": ".training",
    "DiscreteGaussianScores": ".policies",
    "Family": ".targets",
    "FullScores": ".policies",
    "MembershipAudit": ".result",
    "MembershipAuditConfig": ".config",
    "OneRunResult": ".one_run",
    "RoundedScores": ".policies",
    "Target": ".targets",
    "TopLabel": ".policies",
    "TrainSpec": ".training",
    "attack_metrics": ".metrics",
    "lira_scores": ".attacks",
    "one_run_audit": ".one_run",
    "parse_policy": ".policies",
    "parse_target": ".targets",
    "run_membership_audit": ".audit",
    "write_report": ".report",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
