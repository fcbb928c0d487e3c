"""The structural twin of an integer model: its geometry with every weight set to 1.

A layout derived from ``A != 0`` tells the client which weights are zero.
The client sees a first stage's gather pattern (which inputs each output
reads) and the rotation steps it makes Galois keys for (which diagonals of
each matrix are used).  A weight that quantizes to 0, or a pruned one, would
show in both.

The *support* of an affine stage is instead the set of entries the layer's
geometry lets be nonzero, whatever its weights: a convolution's receptive
fields, a dense layer's every entry, a skip path's identity.  The lowering
(:func:`secquant.quant.lowering.lower`) computes it from the twin, which has
the same ops with every weight, scale multiplier and merge weight set to 1:
no two terms of a twin's entry can cancel, so its nonzero entries are exactly
the entries that some choice of weights makes nonzero.  The lowering takes
the union with ``A != 0``, so a layout built on the support never drops a
weight.

API: :func:`structural_op` and :func:`structural_twin`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.quant.dag import IntGraph
from secquant.quant.model import QuantizedModel
from secquant.quant.ops_affine import IntConv1d, IntConv2d, IntLinear, IntScale
from secquant.quant.ops_base import IntOp
from secquant.quant.ops_merge import IntAdd

__all__ = ["structural_op", "structural_twin"]

#: The twin's plaintext modulus: its bounds differ from the model's, and it is never evaluated
#: under encryption, so the constructor's modulus check must not refuse it.
_TWIN_MODULUS = 2**4096


def _ones(a: Any) -> NDArray[np.int64]:
    return np.ones(np.shape(a), dtype=np.int64)


def structural_op(op: IntOp) -> IntOp:
    """``op`` with every multiplicative weight set to 1 (biases and constants kept).

    Weighted ops (linear, conv1d, conv2d), scale ops (BatchNorm, window counts) and
    merge weights (residual adds) change; every other op is returned as it is.
    """
    if isinstance(op, (IntLinear, IntConv1d, IntConv2d)):
        return replace(op, weight=_ones(op.weight))
    if isinstance(op, IntScale):
        return replace(op, multiplier=_ones(op.multiplier))
    if isinstance(op, IntAdd):
        return replace(op, weights=_ones(op.weights))
    return op


def structural_twin(qm: QuantizedModel) -> QuantizedModel:
    """``qm`` with :func:`structural_op` applied to every node (same names, inputs and shapes)."""
    graph = IntGraph(tuple(replace(node, op=structural_op(node.op)) for node in qm.graph.nodes))
    return QuantizedModel(qm.input_quant, graph, qm.output_scale, _TWIN_MODULUS, qm.config)
