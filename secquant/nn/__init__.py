"""Torch layers that homomorphic evaluation can do, and helpers to get a model there.

* :class:`Square`: x², one ciphertext multiplication.
* :class:`Poly`: a polynomial activation whose coefficients are quantized too.
* :func:`approximate_activations`: replace ReLU and friends with fitted
  low-degree polynomials (imported lazily).
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr
from secquant.nn.layers import Poly, Square

__all__ = ["Poly", "Square", "approximate_activations"]

_LAZY = {"approximate_activations": "secquant.nn.approx"}


__getattr__ = lazy_getattr(__name__, _LAZY)
