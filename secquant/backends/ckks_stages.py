"""The integer model as CKKS stages: affine blocks and squares.

Consecutive linear ops (linear, conv2d, sumpool2d, flatten, add_const) compose
into one affine map ``y = A x + c`` of the flattened input, so each block costs
one plaintext multiplication and one rescale however many ops it merges
(conv -> sumpool -> flatten -> linear is one matrix).  A block without weights
(flatten, add_const only) is a ``SHIFT``: a plaintext addition, no level.

Bounds are recomputed for the order in which CKKS sums: every partial sum of
row ``i`` is at most ``sum_j |A_ij| m_j + |c_i|`` for per-element input bounds
``m``, whatever the summation order (diagonals, baby-step giant-step, blocks).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ParameterError, UnsupportedLayerError
from secquant.quant.intops import IntOp
from secquant.quant.model import QuantizedModel

__all__ = ["Stage", "StageKind", "build_stages"]

_LINEAR_KINDS = ("linear", "conv2d", "sumpool2d", "flatten", "add_const")
_WEIGHTED_KINDS = ("linear", "conv2d", "sumpool2d")
#: Entries of a composed matrix must be exact in float64 (the CKKS encoder takes doubles).
_FLOAT_EXACT = 2.0**52
#: Upward inflation of float bounds (they only need to be upper bounds).
_INFLATE = 1.0 + 1e-12
_HUGE_BOUND = 1 << 4096


class StageKind(enum.Enum):
    """What a stage does to the ciphertexts."""

    AFFINE = "affine"  #: y = A x + c: plaintext multiply, one rescale
    SQUARE = "square"  #: y = x²: ciphertext multiply, relinearize, one rescale
    SHIFT = "shift"  #: y = x + c: plaintext add, no level


@dataclass(frozen=True, eq=False)
class Stage:
    """One CKKS stage.

    Attributes:
        kind: AFFINE, SQUARE or SHIFT.
        names: Names of the integer ops it evaluates.
        n_in, n_out: Flattened input and output sizes.
        matrix: (n_out, n_in) integer-valued float64 for AFFINE, else None.
        bias: (n_out,) Python ints (object array); zeros for SQUARE.
        in_bound: (n_in,) float bounds on |input|.
        out_bound: (n_out,) float bounds on |output| (and on every partial sum of a row).
    """

    kind: StageKind
    names: tuple[str, ...]
    n_in: int
    n_out: int
    matrix: NDArray[np.float64] | None
    bias: NDArray[Any]
    in_bound: NDArray[np.float64]
    out_bound: NDArray[np.float64]

    @property
    def consumes_level(self) -> bool:
        """Whether the stage rescales (drops one prime)."""
        return self.kind is not StageKind.SHIFT

    @property
    def partial(self) -> float:
        """Bound on |every value| the stage forms, in integer units."""
        return float(np.max(self.out_bound)) if self.out_bound.size else 0.0

    @property
    def row_l1(self) -> float:
        """Largest row sum of |A| (how much the stage amplifies an input error)."""
        if self.matrix is None:
            return 1.0
        return float(np.max(np.abs(self.matrix).sum(axis=1)))

    @property
    def row_nnz(self) -> int:
        """Most non-zero weights in one row."""
        if self.matrix is None:
            return 1
        return int(np.max(np.count_nonzero(self.matrix, axis=1)))

    def bias_float(self) -> NDArray[np.float64]:
        """The bias as float64 (exact up to 2**53, relative 2**-53 beyond)."""
        return np.array([float(v) for v in self.bias], dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"kind": self.kind.value, "ops": list(self.names), "n_in": self.n_in, "n_out": self.n_out,
                "partial_bound_bits": round(float(np.log2(max(self.partial, 1.0))), 2)}


def _linear_part(op: IntOp, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply the weights of ``op`` (no bias) to float inputs that stay exact."""
    if op.kind in ("linear", "conv2d"):
        return np.asarray(op._apply(x, op.weight, 1), dtype=np.float64)  # type: ignore[attr-defined]
    if op.kind == "sumpool2d":
        return np.asarray(op.forward(x, 1), dtype=np.float64)
    if op.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    return x  # add_const: identity


def _abs_op(op: IntOp) -> IntOp:
    """The op with |weights| (to bound the composed matrix)."""
    if op.kind in ("linear", "conv2d"):
        return dataclasses.replace(op, weight=np.abs(np.asarray(op.weight, dtype=np.int64)))  # type: ignore[call-arg]
    return op


def _compose(ops: list[IntOp], shape: tuple[int, ...]) -> tuple[NDArray[np.float64], NDArray[Any], tuple[int, ...]]:
    """The matrix A (n_out, n_in) and bias c of a chain of linear ops on inputs of ``shape``."""
    n_in = int(np.prod(shape))
    eye = np.eye(n_in, dtype=np.float64).reshape(n_in, *shape)
    cols, abs_cols = eye, eye
    zero = np.zeros((1, *shape), dtype=np.int64)
    for op in ops:
        if op.kind in ("linear", "conv2d"):
            if int(np.max(np.abs(np.asarray(op.weight, dtype=object)))) >= 2**31:
                raise ParameterError(f"{op.name}: weights past 2**31 cannot be encoded exactly for CKKS")
        cols = _linear_part(op, cols)
        abs_cols = _linear_part(_abs_op(op), abs_cols)
        zero = op.forward(zero, _HUGE_BOUND)
        shape = op.output_shape(shape)
    if abs_cols.size and float(np.max(abs_cols)) >= _FLOAT_EXACT:
        raise ParameterError(f"the composed weights of {[o.name for o in ops]} pass 2**52; CKKS encodes doubles")
    matrix = cols.reshape(n_in, -1).T.copy()
    bias = np.array([int(v) for v in np.asarray(zero, dtype=object).reshape(-1)], dtype=object)
    return matrix, bias, shape


def _affine_bound(matrix: NDArray[np.float64], bias: NDArray[Any], m: NDArray[np.float64]) -> NDArray[np.float64]:
    babs = np.array([float(abs(int(v))) for v in bias], dtype=np.float64)
    return (np.abs(matrix) @ m + babs) * _INFLATE


def build_stages(qm: QuantizedModel) -> list[Stage]:
    """Split ``qm`` into CKKS stages with their bounds.

    Raises:
        UnsupportedLayerError: an op CKKS does not evaluate here (``poly``).
        ParameterError: composed weights too large for doubles.
    """
    bad = [f"{op.name} ({op.kind}): not evaluated by the CKKS backend; use Square"
           for op in qm.ops if op.kind not in (*_LINEAR_KINDS, "square")]
    if bad:
        raise UnsupportedLayerError(bad)
    iq = qm.input_quant
    m = np.full(int(np.prod(qm.input_shape)), float(max(abs(iq.lo), abs(iq.hi))))
    shape = qm.input_shape
    stages: list[Stage] = []
    pending: list[IntOp] = []

    def flush() -> None:
        nonlocal m, shape, pending
        if not pending:
            return
        matrix, bias, out_shape = _compose(pending, shape)
        weighted = any(op.kind in _WEIGHTED_KINDS for op in pending)
        out = _affine_bound(matrix, bias, m)
        names = tuple(op.name for op in pending)
        if weighted:
            stages.append(Stage(StageKind.AFFINE, names, m.size, out.size, matrix, bias, m, out))
        else:
            stages.append(Stage(StageKind.SHIFT, names, m.size, out.size, None, bias, m, out))
        m, shape, pending = out, out_shape, []

    for op in qm.ops:
        if op.kind == "square":
            flush()
            out = m * m * _INFLATE
            zeros = np.array([0] * m.size, dtype=object)
            stages.append(Stage(StageKind.SQUARE, (op.name,), m.size, m.size, None, zeros, m, out))
            m = out
        else:
            pending.append(op)
    flush()
    return stages
