"""Former home of the ε accounting, kept so that existing imports keep working.

The accounting belongs to the mechanisms and lives in :mod:`secquant.dp.accounting`;
names here resolve lazily to it.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    name: "secquant.dp.accounting"
    for name in ("check_delta", "discrete_gaussian_epsilon", "epsilon_for_event", "epsilon_from_privacy_loss")
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
