"""Former home of the DP mechanisms, kept so that existing imports keep working.

The mechanisms are production code and live in :mod:`secquant.dp.mechanisms`;
the built-in audit cases live in :mod:`secquant.audit.cases`.  Names resolve
lazily to those modules (``from secquant.audit.mechanisms import
LaplaceMechanism`` is ``secquant.dp.mechanisms.LaplaceMechanism``).
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr
from secquant.dp import _MECHANISMS

_LAZY = {
    **{name: "secquant.dp.mechanisms" for name in _MECHANISMS},
    "BuiltinCase": "secquant.audit.cases",
    "builtin_case": "secquant.audit.cases",
    "builtin_cases": "secquant.audit.cases",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
