"""The BFV circuit plan: a quantized model as affine maps, squares and polynomials.

Consecutive affine ops (``linear``, ``conv2d``, ``sumpool2d``, ``flatten``,
``add_const``) merge into one exact integer map ``y = A x + b`` over flattened
features (C order, as ``IntFlatten`` flattens).  Merging changes no value that
is decoded: the final integers are the same, and every intermediate lies in
the ring Z_t anyway.  ``square`` and ``poly`` stay element-wise.

The plan is key-less and scheme-agnostic integer data; :mod:`bfv_eval` runs it
on ciphertexts and :func:`simulate_mod` runs it on residues mod t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.intops import IntOp, max_abs
from secquant.quant.model import QuantizedModel

__all__ = ["AffineStage", "PolyStage", "SquareStage", "Stage", "build_plan", "simulate_mod"]

_AFFINE_KINDS = frozenset({"linear", "conv2d", "sumpool2d", "flatten", "add_const"})


@dataclass(frozen=True, eq=False)
class AffineStage:
    """y = A x + b on flat features.

    Attributes:
        name: Names of the merged ops, joined by ``+``.
        matrix: Exact integers, shape (d_out, d_in) (int64 or object).
        bias: Exact integers, shape (d_out,).
    """

    name: str
    matrix: NDArray[Any] = field(repr=False)
    bias: NDArray[Any] = field(repr=False)

    @property
    def d_in(self) -> int:
        """Input features."""
        return int(self.matrix.shape[1])

    @property
    def d_out(self) -> int:
        """Output features."""
        return int(self.matrix.shape[0])

    def reduced(self, t: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(A mod t, b mod t) as int64 in [0, t)."""
        return _mod(self.matrix, t), _mod(self.bias, t)


@dataclass(frozen=True, eq=False)
class SquareStage:
    """y = x * x element-wise (one ciphertext multiplication)."""

    name: str
    dim: int


@dataclass(frozen=True, eq=False)
class PolyStage:
    """y = sum_i c[i] x**i element-wise; ``coeffs`` has shape (degree+1, dim)."""

    name: str
    coeffs: NDArray[Any] = field(repr=False)

    @property
    def degree(self) -> int:
        """Highest power."""
        return int(self.coeffs.shape[0]) - 1

    @property
    def dim(self) -> int:
        """Features."""
        return int(self.coeffs.shape[1])

    @property
    def depth(self) -> int:
        """Ciphertext multiplications on the longest path (powers by splitting k = k//2 + (k - k//2))."""
        return max(0, (self.degree - 1).bit_length())


Stage = AffineStage | SquareStage | PolyStage


def _mod(a: Any, t: int) -> NDArray[np.int64]:
    arr = np.asarray(a)
    if arr.dtype == object:
        return np.mod(arr, t).astype(np.int64)
    return np.mod(arr.astype(np.int64), t).astype(np.int64)


def _op_affine(op: IntOp, shape: tuple[int, ...]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Exact (A, b) of one affine op, from its outputs on zero and on the basis vectors."""
    d_in = int(np.prod(shape))
    arrays = op.arrays()
    bound = 1 + d_in
    for value in arrays.values():
        v = np.asarray(value)
        bound += int(np.sum(np.abs(v.astype(object)))) if v.size else 0
    zero = np.zeros((1, *shape), dtype=np.int64)
    eye = np.eye(d_in, dtype=np.int64).reshape(d_in, *shape)
    b = np.asarray(op.forward(zero, bound)).reshape(-1)
    cols = np.asarray(op.forward(eye, bound)).reshape(d_in, -1)
    a = (cols.astype(object) - b.astype(object)[None, :]).T if cols.dtype == object or b.dtype == object else (cols - b[None, :]).T
    return np.ascontiguousarray(a), b


def _compose(first: AffineStage, a2: NDArray[Any], b2: NDArray[Any], name: str) -> AffineStage:
    """second ∘ first, exactly."""
    a1, b1 = first.matrix, first.bias
    bound = max(1, max_abs(a2)) * max(1, max_abs(a1)) * max(1, a1.shape[0]) + 1
    bbound = max(1, max_abs(a2)) * max(1, max_abs(b1)) * max(1, a1.shape[0]) + max_abs(b2) + 1
    a = exact.matmul(np.asarray(a1).T, np.asarray(a2), bound).T
    b = exact.matmul(np.asarray(b1).reshape(1, -1), np.asarray(a2), bbound)[0]
    b = exact.as_exact(exact.as_exact(b, bbound) + exact.as_exact(b2, bbound), bbound)
    return AffineStage(name=f"{first.name}+{name}", matrix=np.ascontiguousarray(a), bias=b)


def build_plan(qm: QuantizedModel) -> list[Stage]:
    """The stages of ``qm``, affine runs merged.

    Raises:
        ConfigError: an op kind the BFV backend cannot evaluate.
    """
    stages: list[Stage] = []
    pending: AffineStage | None = None
    shape: tuple[int, ...] = qm.input_shape
    for op in qm.ops:
        out_shape = op.output_shape(shape)
        if op.kind == "flatten":
            shape = out_shape
            continue
        if op.kind in _AFFINE_KINDS:
            a, b = _op_affine(op, shape)
            if pending is None:
                pending = AffineStage(name=op.name, matrix=a, bias=b)
            else:
                pending = _compose(pending, a, b, op.name)
        else:
            if pending is not None:
                stages.append(pending)
                pending = None
            dim = int(np.prod(out_shape))
            if op.kind == "square":
                stages.append(SquareStage(name=op.name, dim=dim))
            elif op.kind == "poly":
                coeffs = np.asarray(op.arrays()["coeffs"])
                full = np.broadcast_to(coeffs.reshape(coeffs.shape[0], *coeffs.shape[1:]),
                                       (coeffs.shape[0], *out_shape)).reshape(coeffs.shape[0], dim)
                stages.append(PolyStage(name=op.name, coeffs=np.array(full)))
            else:
                raise ConfigError(f"the BFV backend cannot evaluate op {op.name!r} of kind {op.kind!r}")
        shape = out_shape
    if pending is not None:
        stages.append(pending)
    return stages


def simulate_mod(stages: list[Stage], xq: NDArray[Any], t: int) -> NDArray[np.int64]:
    """Run the plan on residues mod ``t`` (exact; Python ints inside), flat features.

    Args:
        stages: From :func:`build_plan`.
        xq: Integers of shape (n, d_in).
        t: The plaintext modulus.

    Returns:
        Residues in [0, t) of shape (n, d_out).
    """
    x = np.mod(np.asarray(xq).astype(object), t)
    for st in stages:
        if isinstance(st, AffineStage):
            a, b = st.reduced(t)
            x = np.mod(x.dot(a.T.astype(object)) + b.astype(object), t)
        elif isinstance(st, SquareStage):
            x = np.mod(x * x, t)
        else:
            c = np.mod(np.asarray(st.coeffs).astype(object), t)
            total = np.zeros_like(x) + c[0]
            power = np.ones_like(x)
            for i in range(1, st.degree + 1):
                power = np.mod(power * x, t)
                total = np.mod(total + c[i] * power, t)
            x = total
    return np.asarray(x, dtype=np.int64)
