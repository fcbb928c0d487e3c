"""The base of every integer op: its kind, its faces, and the multi-input protocol.

Every op works on exact integers, batch first, and has three faces:

* ``forward(x, bound)``: the exact result (the oracle for every backend);
* ``interval(lo, hi)``: exact per-element bounds of the result, given bounds of
  the input (interval arithmetic);
* ``partial_bound(m)``: per-element bound on the absolute value of every
  partial sum or product the op forms, given ``|x| <= m`` element-wise.

Ops with several inputs (:class:`MergeOp`: residual add, concatenation) take
sequences through :meth:`IntOp.apply`, :meth:`IntOp.interval_of`,
:meth:`IntOp.partial_of` and :meth:`IntOp.shape_of`; single-input ops get those
for free.  Graph code calls only the sequence forms.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["IntArray", "IntOp", "MergeOp", "OpKind", "Shape", "float_bound", "max_abs", "pair"]

IntArray = NDArray[Any]
Shape = tuple[int, ...]


class OpKind(str, enum.Enum):
    """What an integer op computes; backends dispatch on it (it compares equal to its string value)."""

    LINEAR = "linear"  #: y = W x + b
    CONV2D = "conv2d"  #: 2-D cross-correlation + bias
    CONV1D = "conv1d"  #: 1-D cross-correlation + bias
    SUMPOOL2D = "sumpool2d"  #: window sums (average pooling without the division)
    FLATTEN = "flatten"  #: reshape to one axis
    ADD_CONST = "add_const"  #: y = x + c
    SCALE = "scale"  #: y = m ⊙ x + b, element-wise integer affine
    SQUARE = "square"  #: y = x²
    POLY = "poly"  #: y = sum_i A_i x^i element-wise
    REQUANTIZE = "requantize"  #: y = floor((x·M + 2**(s-1)) / 2**s), a fixed-point rescale
    ADD = "add"  #: y = sum_k a_k ⊙ x_k over several inputs (residual connections)
    CONCAT = "concat"  #: concatenation of several inputs along one axis

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def max_abs(*arrays: IntArray) -> int:
    """Largest absolute value over integer arrays, as a Python int (0 if empty)."""
    best = 0
    for a in arrays:
        arr = np.asarray(a)
        if arr.size:
            best = max(best, int(np.max(np.abs(arr))))
    return best


def float_bound(values: NDArray[np.float64]) -> int:
    """An int safely above every float estimate (estimates only pick the arithmetic)."""
    top = float(np.max(values)) if np.size(values) else 0.0
    return math.ceil(top * (1 + 1e-9)) + 1


def pair(v: Any) -> tuple[int, int]:
    """``(v, v)`` for a scalar, else the first two entries as ints."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


@dataclass(frozen=True, eq=False)
class IntOp:
    """Base class: a named integer operation on batch-first arrays."""

    name: str
    kind: ClassVar[OpKind]

    #: Element-wise ops (square, poly, requantize) act on each feature alone.
    elementwise: ClassVar[bool] = False

    @property
    def arity(self) -> int:
        """How many inputs the op takes."""
        return 1

    def output_shape(self, shape: Shape) -> Shape:
        """Shape of one output given the shape of one input (no batch axis)."""
        return shape

    def forward(self, x: IntArray, bound: int) -> IntArray:
        """Exact result for integer ``x`` of shape (n, *shape); ``bound`` is the proven partial bound."""
        raise NotImplementedError

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        """Exact per-element (lo, hi) of the output, given per-element input bounds."""
        raise NotImplementedError

    def partial_bound(self, m: IntArray) -> IntArray:
        """Per-element bound on |every partial result| given ``|x| <= m``."""
        raise NotImplementedError

    def runtime_bound(self, m: int) -> int:
        """A bound on every partial result for inputs with ``|x| <= m`` (scalar form of :meth:`partial_bound`)."""
        return m

    # -- the sequence forms every graph uses ---------------------------------
    def apply(self, inputs: Sequence[IntArray], bound: int) -> IntArray:
        """:meth:`forward` over the op's inputs."""
        return self.forward(inputs[0], bound)

    def interval_of(self, los: Sequence[IntArray], his: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
        """:meth:`interval` over the op's inputs."""
        return self.interval(los[0], his[0])

    def partial_of(self, ms: Sequence[IntArray]) -> IntArray:
        """:meth:`partial_bound` over the op's inputs."""
        return self.partial_bound(ms[0])

    def shape_of(self, shapes: Sequence[Shape]) -> Shape:
        """:meth:`output_shape` over the op's inputs."""
        return self.output_shape(shapes[0])

    # -- serialization -------------------------------------------------------
    def arrays(self) -> dict[str, IntArray]:
        """Integer arrays to serialize."""
        return {}

    def attrs(self) -> dict[str, Any]:
        """JSON-ready attributes to serialize."""
        return {}

    @property
    def multiplicative_depth(self) -> int:
        """Ciphertext-by-ciphertext multiplications on the longest path through this op."""
        return 0


@dataclass(frozen=True, eq=False)
class MergeOp(IntOp):
    """An op over several inputs; subclasses implement the sequence forms."""

    def forward(self, x: IntArray, bound: int) -> IntArray:
        return self.apply([x] * self.arity, bound)

    def interval(self, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        return self.interval_of([lo] * self.arity, [hi] * self.arity)

    def partial_bound(self, m: IntArray) -> IntArray:
        return self.partial_of([m] * self.arity)

    def output_shape(self, shape: Shape) -> Shape:
        return self.shape_of([shape] * self.arity)
