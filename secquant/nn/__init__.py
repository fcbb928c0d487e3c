"""Torch layers that homomorphic evaluation can do, and helpers to get a model there.

* :class:`Square`: x², one ciphertext multiplication.
* :class:`Poly`: a polynomial activation whose coefficients are quantized too.
* :func:`approximate_activations`: replace ReLU and friends with fitted
  low-degree polynomials (imported lazily).
"""

from __future__ import annotations

import importlib
from typing import Any

from secquant.nn.layers import Poly, Square

__all__ = ["Poly", "Square", "approximate_activations"]

_LAZY = {"approximate_activations": "secquant.nn.approx"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'secquant.nn' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
