"""Integer ops over several inputs: weighted addition (residual connections) and concatenation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from secquant.errors import ArtifactError
from secquant.quant import exact
from secquant.quant.ops_base import IntArray, MergeOp, OpKind, Shape, max_abs

__all__ = ["IntAdd", "IntConcat"]


@dataclass(frozen=True, eq=False)
class IntAdd(MergeOp):
    """y = sum_k a_k ⊙ x_k over k >= 2 inputs of one shape.

    ``weights`` has shape (k, *broadcast): integer multipliers that bring every
    input to the output scale (a residual ``x + f(x)`` adds integers at two
    scales).  Exact; no rounding happens here.
    """

    weights: IntArray
    kind: ClassVar[OpKind] = OpKind.ADD

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.dtype.kind not in "iuO" or w.ndim < 1 or w.shape[0] < 2:
            raise ArtifactError(f"add op {self.name!r}: weights must be integers of shape (k >= 2, ...)")

    @property
    def arity(self) -> int:
        return int(np.shape(self.weights)[0])

    def shape_of(self, shapes: Sequence[Shape]) -> Shape:
        return tuple(np.broadcast_shapes(*shapes))

    def apply(self, inputs: Sequence[IntArray], bound: int) -> IntArray:
        total: Any = 0
        for w, x in zip(self.weights, inputs):
            total = total + exact.as_exact(w, bound) * exact.as_exact(x, bound)
        return exact.as_exact(total, bound)

    def interval_of(self, los: Sequence[IntArray], his: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
        out_lo: Any = 0
        out_hi: Any = 0
        for w, lo, hi in zip(exact.to_python_ints(self.weights), los, his):
            a, b = w * np.asarray(lo, dtype=object), w * np.asarray(hi, dtype=object)
            out_lo, out_hi = out_lo + np.minimum(a, b), out_hi + np.maximum(a, b)
        return out_lo, out_hi

    def partial_of(self, ms: Sequence[IntArray]) -> IntArray:
        total: Any = 0
        for w, m in zip(exact.to_python_ints(self.weights), ms):
            total = total + np.abs(w) * np.asarray(m, dtype=object)
        return total

    def runtime_bound(self, m: int) -> int:
        return m * sum(max_abs(w) for w in self.weights)

    def arrays(self) -> dict[str, IntArray]:
        return {"weights": self.weights}


@dataclass(frozen=True, eq=False)
class IntConcat(MergeOp):
    """Concatenation of ``inputs`` (>= 2) along ``axis`` of one example (0: channels or features)."""

    inputs: int = 2
    axis: int = 0
    kind: ClassVar[OpKind] = OpKind.CONCAT

    def __post_init__(self) -> None:
        if int(self.inputs) < 2 or int(self.axis) < 0:
            raise ArtifactError(f"concat op {self.name!r}: needs >= 2 inputs and a non-negative axis")
        object.__setattr__(self, "inputs", int(self.inputs))
        object.__setattr__(self, "axis", int(self.axis))

    @property
    def arity(self) -> int:
        return self.inputs

    def shape_of(self, shapes: Sequence[Shape]) -> Shape:
        first = list(shapes[0])
        first[self.axis] = sum(int(s[self.axis]) for s in shapes)
        return tuple(first)

    def apply(self, inputs: Sequence[IntArray], bound: int) -> IntArray:
        return np.concatenate([exact.as_exact(x, bound) for x in inputs], axis=self.axis + 1)

    def interval_of(self, los: Sequence[IntArray], his: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
        return (np.concatenate([np.asarray(v, dtype=object) for v in los], axis=self.axis),
                np.concatenate([np.asarray(v, dtype=object) for v in his], axis=self.axis))

    def partial_of(self, ms: Sequence[IntArray]) -> IntArray:
        return np.concatenate([np.asarray(m, dtype=object) for m in ms], axis=self.axis)

    def attrs(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "axis": self.axis}
