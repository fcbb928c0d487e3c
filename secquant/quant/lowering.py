"""The one lowering of an integer model's op chain into stages every backend evaluates.

An encrypted backend does not evaluate ops one by one.  It evaluates *stages*:

* :class:`Affine`: ``y = A x + b`` on flattened features (C order, as
  ``IntFlatten`` flattens).  A maximal run of consecutive affine ops (linear,
  conv2d, sumpool2d, flatten, add_const) is composed into one exact integer
  matrix: composing integer affine maps is exact, so no decoded value changes.
* :class:`Square`: ``y = x * x`` element-wise (one ciphertext multiplication).
* :class:`Poly`: ``y = sum_i c[i] x**i`` element-wise, coefficients per feature.

API (everything a backend needs; nothing reaches into an op's internals):

* ``lower(qm) -> tuple[Stage, ...]``: the stages of a :class:`QuantizedModel`
  in order.  ``functools.reduce(lambda x, s: s.apply(x), lower(qm), xq)``
  equals ``qm.forward_int(xq)`` exactly, shape included.
* ``Stage = Affine | Square | Poly``; ``stage.kind`` is a :class:`StageKind`.
  Dispatch on ``stage.kind`` or ``isinstance``, never on strings.
* Every stage (frozen dataclass) holds ``names`` (the ops it evaluates),
  ``in_shape``/``out_shape`` (one input, no batch axis), and proven bounds from
  ``qm.bounds()``: ``in_bound``/``out_bound`` (per-feature worst-case |value|,
  object arrays of Python ints, flattened) with the maxima ``in_max``/``out_max``,
  and ``partial_bound``/``partial_max``: the bound on every partial sum, term or
  product the stage forms for inputs within ``in_bound`` (whatever the summation
  order).  ``propagate(m)`` gives that bound for any per-feature input bound ``m``
  (a backend that tracks its own, looser chain of bounds folds it).
* ``apply(x)``: exact result on integers of shape (n, *in_shape) (or
  (n, in_features)); shape (n, *out_shape); int64 when the values allow, else
  Python ints.
* :class:`Affine`: ``matrix`` (d_out, d_in) and ``bias`` (d_out,), int64 when
  every entry fits, else object; ``d_in``, ``d_out``, ``row_l1``,
  ``is_shift`` (identity matrix: only a plaintext addition), ``is_reshape``
  (identity and zero bias: nothing to compute), ``reduced(t)``.
* :class:`Poly`: ``coeffs`` (degree+1, dim); ``degree``, ``dim``, ``depth``,
  ``trimmed()`` (top zero coefficients dropped), ``reduced(t)``.
* :class:`Square`: ``dim``.

:class:`StageKind` will grow (a requantize stage, issue 12); backends should
refuse kinds they do not know with :class:`~secquant.errors.UnsupportedLayerError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, TypeAlias

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.quant import exact, intops
from secquant.quant.intops import IntOp, IntPoly, IntSquare, max_abs
from secquant.quant.model import QuantizedModel

__all__ = ["AFFINE_OPS", "Affine", "Poly", "Square", "Stage", "StageKind", "lower"]

IntArray = NDArray[Any]
Shape = tuple[int, ...]

#: Op types that compose into an :class:`Affine` stage.
AFFINE_OPS: tuple[type[IntOp], ...] = (intops.IntLinear, intops.IntConv2d, intops.IntSumPool2d, intops.IntFlatten,
                                       intops.IntAddConst)


class StageKind(enum.Enum):
    """What a stage computes."""

    AFFINE = "affine"  #: y = A x + b on flattened features
    SQUARE = "square"  #: y = x * x element-wise
    POLY = "poly"  #: y = sum_i c[i] x**i element-wise


def _compact(a: Any) -> IntArray:
    """Exact integers as int64 when every entry fits, else as Python ints (object)."""
    arr = np.asarray(a)
    return exact.as_exact(arr, max_abs(arr) + 1)


def _bound_vector(values: Any, size: int, what: str) -> IntArray:
    """A flat object array of ``size`` non-negative Python ints."""
    vec = exact.to_python_ints(np.asarray(values)).reshape(-1)
    if vec.size != size:
        raise ConfigError(f"{what} has {vec.size} entries, expected {size}")
    if size and int(np.min(vec)) < 0:
        raise ConfigError(f"{what} must be non-negative")
    return vec


def _flat(x: Any, features: int) -> IntArray:
    """``x`` as (n, features) integers.

    Raises:
        ConfigError: ``x`` is not integer, or not a batch of ``features`` values each.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuO":
        raise ConfigError(f"stages take integer arrays, got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.size != len(arr) * features:
        raise ConfigError(f"a stage takes (n, {features}) values, got shape {arr.shape}")
    return arr.reshape(len(arr), features)


def _mod_int64(a: IntArray, t: int) -> NDArray[np.int64]:
    """``a mod t`` as int64 in [0, t)."""
    if t < 2 or t >= exact.INT64_EXACT:
        raise ConfigError(f"a modulus must lie in [2, 2**63), got {t}")
    return np.mod(exact.to_python_ints(a), t).astype(np.int64)


@dataclass(frozen=True, eq=False)
class _StageBase:
    """Fields every stage has (see the module docstring)."""

    names: tuple[str, ...]
    in_shape: Shape
    out_shape: Shape
    in_bound: IntArray = field(repr=False)
    out_bound: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("a stage evaluates at least one op")
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "out_shape", tuple(int(v) for v in self.out_shape))
        object.__setattr__(self, "in_bound", _bound_vector(self.in_bound, self.in_features, "in_bound"))
        object.__setattr__(self, "out_bound", _bound_vector(self.out_bound, self.out_features, "out_bound"))

    @property
    def in_features(self) -> int:
        """Flattened input size."""
        return int(np.prod(self.in_shape, dtype=np.int64))

    @property
    def out_features(self) -> int:
        """Flattened output size."""
        return int(np.prod(self.out_shape, dtype=np.int64))

    @property
    def in_max(self) -> int:
        """Worst-case |input integer|."""
        return max_abs(self.in_bound)

    @property
    def out_max(self) -> int:
        """Worst-case |output integer|."""
        return max_abs(self.out_bound)

    @cached_property
    def partial_bound(self) -> IntArray:
        """Per output feature: bound on every partial sum, term or product, for inputs within ``in_bound``."""
        return self.propagate(self.in_bound)

    @property
    def partial_max(self) -> int:
        """Largest entry of :attr:`partial_bound` (at least :attr:`out_max`)."""
        return max(max_abs(self.partial_bound), self.out_max)

    def propagate(self, m: Any) -> IntArray:
        """Per output feature: bound on every value the stage forms when ``|x_j| <= m[j]``."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Affine(_StageBase):
    """``y = A x + b`` on flattened features, the composition of consecutive affine ops.

    Attributes:
        matrix: Exact integers, shape (d_out, d_in); int64 when every entry fits, else object.
        bias: Exact integers, shape (d_out,).
    """

    matrix: IntArray = field(repr=False)
    bias: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "matrix", _compact(self.matrix))
        object.__setattr__(self, "bias", _compact(self.bias).reshape(-1))
        if self.matrix.shape != (self.out_features, self.in_features) or self.bias.shape != (self.out_features,):
            raise ConfigError(f"affine stage {self.names}: matrix {self.matrix.shape} and bias {self.bias.shape} "
                              f"do not map {self.in_shape} to {self.out_shape}")

    kind: ClassVar[StageKind] = StageKind.AFFINE  #: :attr:`StageKind.AFFINE`

    @property
    def d_in(self) -> int:
        """Input features."""
        return self.in_features

    @property
    def d_out(self) -> int:
        """Output features."""
        return self.out_features

    @cached_property
    def row_l1(self) -> int:
        """Largest row sum of |A| (how much the stage amplifies its inputs)."""
        return int(np.max(np.abs(exact.to_python_ints(self.matrix)).sum(axis=1))) if self.matrix.size else 0

    @cached_property
    def is_shift(self) -> bool:
        """Whether A is the identity: the stage only adds ``b``."""
        return self.d_in == self.d_out and bool(np.array_equal(self.matrix, np.eye(self.d_in, dtype=np.int64)))

    @property
    def is_reshape(self) -> bool:
        """Whether the stage changes no value (identity matrix, zero bias): a flatten alone."""
        return self.is_shift and not np.any(self.bias)

    def propagate(self, m: Any) -> IntArray:
        """``|A| m + |b|`` per output feature: bounds every partial sum of a row, in any order."""
        mv = _bound_vector(m, self.d_in, "m")
        bound = self.row_l1 * max_abs(mv) + 1
        weighted = exact.matmul(mv[None], np.abs(exact.to_python_ints(self.matrix)), bound)[0]
        return exact.to_python_ints(weighted) + np.abs(exact.to_python_ints(self.bias))

    def apply(self, x: Any) -> IntArray:
        """Exact ``A x + b`` for integers of shape (n, *in_shape); result (n, *out_shape)."""
        flat = _flat(x, self.d_in)
        bound = self.row_l1 * max_abs(flat) + max_abs(self.bias)
        y = exact.matmul(exact.as_exact(flat, bound), self.matrix, bound)
        out = exact.as_exact(exact.as_exact(y, bound) + exact.as_exact(self.bias, bound), bound)
        return out.reshape(len(flat), *self.out_shape)

    def reduced(self, t: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(A mod t, b mod t)`` as int64 in [0, t).

        Raises:
            ConfigError: ``t`` is not in [2, 2**63).
        """
        return _mod_int64(self.matrix, t), _mod_int64(self.bias, t)


@dataclass(frozen=True, eq=False)
class _Elementwise(_StageBase):
    """A stage that maps each feature alone: the same input and output shape."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.in_shape != self.out_shape:
            raise ConfigError(f"element-wise stage {self.names}: shapes {self.in_shape} -> {self.out_shape} differ")

    @property
    def dim(self) -> int:
        """Features."""
        return self.in_features


@dataclass(frozen=True, eq=False)
class Square(_Elementwise):
    """``y = x * x`` element-wise."""

    kind: ClassVar[StageKind] = StageKind.SQUARE  #: :attr:`StageKind.SQUARE`

    def propagate(self, m: Any) -> IntArray:
        """``m * m`` per feature."""
        mv = _bound_vector(m, self.dim, "m")
        return mv * mv

    def apply(self, x: Any) -> IntArray:
        """Exact ``x * x`` for integers of shape (n, *in_shape)."""
        flat = _flat(x, self.dim)
        top = max_abs(flat)
        xe = exact.as_exact(flat, top * top)
        return (xe * xe).reshape(len(flat), *self.out_shape)


@dataclass(frozen=True, eq=False)
class Poly(_Elementwise):
    """``y = sum_i coeffs[i] * x**i`` element-wise.

    Attributes:
        coeffs: Exact integers of shape (degree+1, dim): ``coeffs[i, j]`` multiplies
            ``x_j**i``; int64 when every entry fits, else object.
    """

    coeffs: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "coeffs", _compact(self.coeffs))
        if self.coeffs.ndim != 2 or self.coeffs.shape[0] < 1 or self.coeffs.shape[1] != self.dim:
            raise ConfigError(f"poly stage {self.names}: coeffs of shape {self.coeffs.shape}; expected "
                              f"(degree+1, {self.dim})")

    kind: ClassVar[StageKind] = StageKind.POLY  #: :attr:`StageKind.POLY`

    @property
    def degree(self) -> int:
        """Highest power (zero top coefficients included; see :meth:`trimmed`)."""
        return int(self.coeffs.shape[0]) - 1

    @property
    def depth(self) -> int:
        """Ciphertext multiplications on the longest path (x**k as x**(k//2) * x**(k - k//2)): ceil(log2 degree)."""
        return max(0, (self.degree - 1).bit_length())

    def trimmed(self) -> Poly:
        """The same map with all-zero top coefficients dropped (down to degree 1; quantization may zero them)."""
        keep = self.coeffs.shape[0]
        while keep > 2 and not np.any(self.coeffs[keep - 1]):
            keep -= 1
        if keep == self.coeffs.shape[0]:
            return self
        return Poly(self.names, self.in_shape, self.out_shape, self.in_bound, self.out_bound, self.coeffs[:keep])

    def propagate(self, m: Any) -> IntArray:
        """``sum_i |coeffs[i]| m**i`` per feature: bounds every term and partial sum."""
        mv = _bound_vector(m, self.dim, "m")
        absc = np.abs(exact.to_python_ints(self.coeffs))
        total = absc[0].copy()
        power = np.ones_like(mv)
        for i in range(1, self.degree + 1):
            power = power * mv
            total = total + absc[i] * power
        return total

    def apply(self, x: Any) -> IntArray:
        """Exact polynomial for integers of shape (n, *in_shape)."""
        flat = _flat(x, self.dim)
        top = max_abs(flat)
        bound = sum(max_abs(self.coeffs[i]) * top**i for i in range(self.degree + 1)) + top**self.degree + 1
        xe = exact.as_exact(flat, bound)
        c = exact.as_exact(self.coeffs, bound)
        total = np.zeros_like(xe) + c[0]
        power = np.ones_like(xe)
        for i in range(1, self.degree + 1):
            power = power * xe
            total = total + c[i] * power
        return total.reshape(len(flat), *self.out_shape)

    def reduced(self, t: int) -> NDArray[np.int64]:
        """``coeffs mod t`` as int64 in [0, t).

        Raises:
            ConfigError: ``t`` is not in [2, 2**63).
        """
        return _mod_int64(self.coeffs, t)


Stage: TypeAlias = Affine | Square | Poly


def _affine_map(ops: list[IntOp], in_shape: Shape) -> tuple[IntArray, IntArray, Shape]:
    """(A, b, out_shape) of a chain of affine ops, from its outputs on 0 and on every unit vector.

    Each op runs with a bound proven for inputs in [-1, 1] (interval
    arithmetic through the chain), so every value is exact.
    """
    shape = in_shape
    d = int(np.prod(in_shape, dtype=np.int64))
    basis = np.zeros((d + 1, d), dtype=np.int64)
    basis[1:] = np.eye(d, dtype=np.int64)
    x: IntArray = basis.reshape(d + 1, *in_shape)
    m: IntArray = np.ones(in_shape, dtype=object)
    for op in ops:
        lo, hi = op.interval(-m, m)
        bound = max(max_abs(op.partial_bound(m)), max_abs(lo, hi), 1)
        m = np.maximum(np.abs(np.asarray(lo, dtype=object)), np.abs(np.asarray(hi, dtype=object)))
        x = op.forward(x, bound)
        shape = op.output_shape(shape)
    out = np.asarray(x).reshape(d + 1, -1)
    out = exact.as_exact(out, 2 * max_abs(out) + 1)
    bias = out[0]
    return np.ascontiguousarray((out[1:] - bias).T), np.asarray(bias), shape


def _poly_coeffs(op: IntPoly, shape: Shape) -> IntArray:
    """``op.coeffs`` broadcast to (degree+1, prod(shape)).

    Raises:
        ConfigError: the coefficients do not broadcast to the layer's input shape.
    """
    raw = np.asarray(op.coeffs)
    extra = len(shape) - (raw.ndim - 1)  # scalar or per-channel coefficients align with the trailing axes
    lead = raw.reshape(raw.shape[0], *([1] * extra), *raw.shape[1:]) if extra > 0 else raw
    try:
        full = np.broadcast_to(lead, (raw.shape[0], *shape))
    except ValueError as exc:
        raise ConfigError(f"{op.name}: poly coefficients of shape {raw.shape[1:]} do not broadcast to the layer's "
                          f"input shape {shape}; quantize the model again") from exc
    return np.array(full).reshape(raw.shape[0], -1)


def _unsupported(ops: tuple[IntOp, ...]) -> list[str]:
    known = [cls.__name__ for cls in (*AFFINE_OPS, IntSquare, IntPoly)]
    return [f"{op.name} ({op.kind}): encrypted backends evaluate only {', '.join(known)}"
            for op in ops if not isinstance(op, (*AFFINE_OPS, IntSquare, IntPoly))]


def _per_feature(lo: Any, hi: Any) -> IntArray:
    lo_o, hi_o = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
    return np.maximum(np.abs(lo_o), np.abs(hi_o)).reshape(-1)


def lower(qm: QuantizedModel) -> tuple[Stage, ...]:
    """The stages of ``qm``'s op chain, with consecutive affine ops merged into one :class:`Affine`.

    Raises:
        UnsupportedLayerError: an op is neither affine nor a square or a polynomial.
        GraphModelError: the model branches (lay it out as a chain first).
        ConfigError: a polynomial's coefficients do not fit its input shape.
    """
    ops = tuple(qm.ops)
    problems = _unsupported(ops)
    if problems:
        raise UnsupportedLayerError(problems)
    report = qm.bounds()
    shape: Shape = tuple(qm.input_shape)
    m_in = _per_feature(report.input.lo, report.input.hi)
    stages: list[Stage] = []
    k = 0
    while k < len(ops):
        op = ops[k]
        if isinstance(op, AFFINE_OPS):
            end = k
            while end < len(ops) and isinstance(ops[end], AFFINE_OPS):
                end += 1
            run = list(ops[k:end])
            matrix, bias, out_shape = _affine_map(run, shape)
            last = report.layers[end - 1]
            stage: Stage = Affine(tuple(o.name for o in run), shape, out_shape, m_in, _per_feature(last.lo, last.hi),
                                  matrix, bias)
            k = end
        else:
            layer = report.layers[k]
            out = _per_feature(layer.lo, layer.hi)
            if isinstance(op, IntPoly):
                stage = Poly((op.name,), shape, shape, m_in, out, _poly_coeffs(op, shape))
            else:
                stage = Square((op.name,), shape, shape, m_in, out)
            k += 1
        stages.append(stage)
        shape, m_in = stage.out_shape, stage.out_bound
    return tuple(stages)
