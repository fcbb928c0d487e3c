"""The integer model as CKKS stages: affine blocks, squares and polynomials.

Consecutive linear ops (linear, conv2d, sumpool2d, flatten, add_const) compose
into one affine map ``y = A x + c`` of the flattened input, so each block costs
one plaintext multiplication and one rescale however many ops it merges
(conv -> sumpool -> flatten -> linear is one matrix).  A block without weights
(flatten, add_const only) is a ``SHIFT``: a plaintext addition, no level.
An integer ``poly`` op is a ``POLY`` stage: powers of x by repeated squaring,
then one plaintext multiplication per coefficient (per-element coefficients)
and one rescale, ``ceil(log2 degree) + 1`` levels in all.

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
#: Highest polynomial degree the CKKS backend evaluates (what ``approximate_activations`` fits).
MAX_POLY_DEGREE = 8


class StageKind(enum.Enum):
    """What a stage does to the ciphertexts."""

    AFFINE = "affine"  #: y = A x + c: plaintext multiply, one rescale
    SQUARE = "square"  #: y = x²: ciphertext multiply, relinearize, one rescale
    SHIFT = "shift"  #: y = x + c: plaintext add, no level
    POLY = "poly"  #: y = sum_i A_i x^i: powers by squaring, plaintext multiplies, ceil(log2 d) + 1 levels


def power_depth(i: int) -> int:
    """Levels x**i costs when built as x**a · x**(i-a), a the largest power of two below i: ceil(log2 i)."""
    return (int(i) - 1).bit_length()


def power_split(i: int) -> tuple[int, int]:
    """(a, i - a) with a the largest power of two below i (i >= 2); depth(a) >= depth(i - a)."""
    a = 1 << ((int(i) - 1).bit_length() - 1)
    return a, int(i) - a


def powers_needed(degrees: list[int]) -> list[int]:
    """Every power >= 2 needed to build x**i for each i in ``degrees``, in an order that builds them."""
    need: set[int] = set()
    todo = [d for d in degrees if d >= 2]
    while todo:
        i = todo.pop()
        if i in need:
            continue
        need.add(i)
        todo.extend(j for j in power_split(i) if j >= 2)
    return sorted(need)


@dataclass(frozen=True, eq=False)
class Stage:
    """One CKKS stage.

    Attributes:
        kind: AFFINE, SQUARE, SHIFT or POLY.
        names: Names of the integer ops it evaluates.
        n_in, n_out: Flattened input and output sizes.
        matrix: (n_out, n_in) integer-valued float64 for AFFINE, else None.
        bias: (n_out,) Python ints (object array); zeros for SQUARE; A_0 for POLY.
        in_bound: (n_in,) float bounds on |input|.
        out_bound: (n_out,) float bounds on |output| (and on every partial sum of a row;
            for POLY, ``sum_i |A_i| m**i``, which covers every term and partial sum).
        coeffs: POLY: (degree+1, n) Python ints, ``coeffs[i]`` broadcast to the
            flattened input; else None.
        partial_floor: The proven ``partial_max_abs`` of the op (``qm.bounds()``);
            :attr:`partial` is never below it.
    """

    kind: StageKind
    names: tuple[str, ...]
    n_in: int
    n_out: int
    matrix: NDArray[np.float64] | None
    bias: NDArray[Any]
    in_bound: NDArray[np.float64]
    out_bound: NDArray[np.float64]
    coeffs: NDArray[Any] | None = None
    partial_floor: float = 0.0

    @property
    def degree(self) -> int:
        """Polynomial degree (POLY), else 0."""
        return int(self.coeffs.shape[0]) - 1 if self.coeffs is not None else 0

    @property
    def levels(self) -> int:
        """Primes the stage drops: 0 (SHIFT), 1 (AFFINE, SQUARE), ceil(log2 degree) + 1 (POLY)."""
        if self.kind is StageKind.SHIFT:
            return 0
        if self.kind is StageKind.POLY:
            return power_depth(self.degree) + 1
        return 1

    @property
    def partial(self) -> float:
        """Bound on |every value| the stage forms, in integer units."""
        top = float(np.max(self.out_bound)) if self.out_bound.size else 0.0
        return max(top, self.partial_floor)

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
        d = {"kind": self.kind.value, "ops": list(self.names), "n_in": self.n_in, "n_out": self.n_out,
             "partial_bound_bits": round(float(np.log2(max(self.partial, 1.0))), 2)}
        if self.kind is StageKind.POLY:
            d["degree"] = self.degree
        return d



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


def _poly_stage(op: IntOp, shape: tuple[int, ...], m: NDArray[np.float64], floor: int) -> Stage:
    """The POLY stage of an integer ``poly`` op on inputs of ``shape`` bounded by ``m`` (flattened)."""
    raw = np.asarray(op.coeffs, dtype=object)  # type: ignore[attr-defined]
    try:
        coeffs = np.stack([np.broadcast_to(raw[i], shape).reshape(-1) for i in range(raw.shape[0])])
    except ValueError as exc:
        raise ParameterError(f"{op.name}: poly coefficients of shape {raw.shape[1:]} do not broadcast to the "
                             f"layer's input shape {shape}") from exc
    coeffs = np.vectorize(int, otypes=[object])(coeffs)
    while coeffs.shape[0] > 2 and not any(coeffs[-1]):  # quantization may zero the top coefficient
        coeffs = coeffs[:-1]
    top = max((abs(int(v)) for v in coeffs[1:].reshape(-1)), default=0)
    if top >= _FLOAT_EXACT:
        raise ParameterError(f"{op.name}: a poly coefficient of x**i (i >= 1) reaches 2**{top.bit_length() - 1}; "
                             "CKKS encodes doubles, exact only below 2**52: quantize the layer with fewer bits")
    absc = np.abs(coeffs).astype(np.float64)
    out = absc[0].copy()
    for i in range(1, coeffs.shape[0]):
        out = out + absc[i] * m**i
    out = out * _INFLATE
    return Stage(StageKind.POLY, (op.name,), m.size, m.size, None, coeffs[0].copy(), m, out, coeffs,
                 float(floor) * _INFLATE)


def build_stages(qm: QuantizedModel) -> list[Stage]:
    """Split ``qm`` into CKKS stages with their bounds.

    Raises:
        UnsupportedLayerError: an op CKKS does not evaluate here, or a ``poly``
            of degree above :data:`MAX_POLY_DEGREE`.
        ParameterError: composed weights or poly coefficients too large for doubles.
    """
    bad = [f"{op.name} ({op.kind}): not evaluated by the CKKS backend; use Square or Poly"
           for op in qm.ops if op.kind not in (*_LINEAR_KINDS, "square", "poly")]
    bad += [f"{op.name} (poly of degree {op.degree}): the CKKS backend evaluates degree <= {MAX_POLY_DEGREE} "
            f"(ceil(log2 d) + 1 levels); refit with approximate_activations(degree<={MAX_POLY_DEGREE})"
            for op in qm.ops if op.kind == "poly" and op.degree > MAX_POLY_DEGREE]  # type: ignore[attr-defined]
    if bad:
        raise UnsupportedLayerError(bad)
    proven = qm.bounds().layers
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

    for k, op in enumerate(qm.ops):
        if op.kind == "poly":
            flush()
            st = _poly_stage(op, shape, m, proven[k].partial_max_abs)
            stages.append(st)
            m = st.out_bound
        elif op.kind == "square":
            flush()
            out = m * m * _INFLATE
            zeros = np.array([0] * m.size, dtype=object)
            stages.append(Stage(StageKind.SQUARE, (op.name,), m.size, m.size, None, zeros, m, out))
            m = out
        else:
            pending.append(op)
    flush()
    return stages
