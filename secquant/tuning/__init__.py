"""Quantization parameter tuning: calibration search, quantization-aware training, accuracy reports.

* :func:`tune` (:mod:`secquant.tuning.search`): the cheapest configuration meeting a target.
* :class:`FakeQuantModel` (:mod:`secquant.tuning.qat`): QAT whose forward is the integer model.
* :func:`accuracy_breakdown` (:mod:`secquant.tuning.report`): accuracy per stage,
  float → polynomial → quantized → modular → encrypted.
"""

from __future__ import annotations

import importlib
from typing import Any

from secquant.tuning.search import (
    MaxAccuracyDrop,
    MaxModulusBits,
    SearchSpace,
    TargetNotMetError,
    Trial,
    TuneResult,
    tune,
)

__all__ = [
    "AccuracyReport",
    "FakeQuantModel",
    "MaxAccuracyDrop",
    "MaxModulusBits",
    "SearchSpace",
    "TargetNotMetError",
    "Trial",
    "TuneResult",
    "accuracy_breakdown",
    "tune",
]

_LAZY = {
    "FakeQuantModel": "secquant.tuning.qat",
    "AccuracyReport": "secquant.tuning.report",
    "accuracy_breakdown": "secquant.tuning.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'secquant.tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
