"""Quantization: a torch model to an exact integer model mod p.

* :func:`quantize_model` (:mod:`~secquant.quant.convert`): trace, convert, check bounds.
* :class:`QuantizedModel` (:mod:`~secquant.quant.model`): ``forward_int``, ``predict``, ``bounds``, ``save``/``load``.
* :class:`IntGraph` (:mod:`~secquant.quant.dag`): the integer ops as a DAG.
* :class:`RequantizeConfig` (:mod:`~secquant.quant.requantize_config`): operation quantization.
* :func:`linearize` (:mod:`~secquant.quant.linearize`): a graph as an equivalent chain.

Names are imported on first access, so ``import secquant.quant`` stays cheap.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["IntGraph", "QuantConfig", "QuantizedModel", "RangeSource", "RequantizeAt", "RequantizeConfig",
           "linearize", "quantize_model"]

_LAZY = {
    "IntGraph": "secquant.quant.dag",
    "QuantConfig": "secquant.quant.config",
    "QuantizedModel": "secquant.quant.model",
    "RangeSource": "secquant.quant.requantize_config",
    "RequantizeAt": "secquant.quant.requantize_config",
    "RequantizeConfig": "secquant.quant.requantize_config",
    "linearize": "secquant.quant.linearize",
    "quantize_model": "secquant.quant.convert",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
