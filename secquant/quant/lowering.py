"""The one lowering of an integer model's op chain into stages every backend evaluates.

An encrypted backend does not evaluate ops one by one.  It evaluates *stages*:

* :class:`Affine`: ``y = A x + b`` on flattened features (C order, as
  ``IntFlatten`` flattens).  A maximal run of consecutive affine ops (linear,
  conv2d, sumpool2d, flatten, add_const) is composed into one exact integer
  matrix: composing integer affine maps is exact, so no decoded value changes.
* :class:`Square`: ``y = x * x`` element-wise (one ciphertext multiplication).
* :class:`Poly`: ``y = sum_i c[i] x**i`` element-wise, coefficients per feature.
* :class:`Requantize`: ``y = clip(floor((x·M + 2**(s-1)) / 2**s), ±L)``
  element-wise (operation quantization, issue 12): a fixed-point rescale by
  ``M / 2**s`` with the op's exact rounding rule (:class:`Rounding`).

A model that is not a chain of these ops (residual adds, concatenations,
BatchNorm scale ops, Conv1d) is laid out first as an equivalent chain by
:func:`secquant.quant.linearize.linearize`: values a later layer still needs
(a skip path) ride through the element-wise stages as pass-through features
(poly coefficient ``x``, requantize ``M = 1, s = 0``).  Every backend thus sees
DAG models and requantize ops through this one lowering.

API (everything a backend needs; nothing reaches into an op's internals):

* ``lower(qm) -> tuple[Stage, ...]``: the stages of a :class:`QuantizedModel`
  in order.  ``functools.reduce(lambda x, s: s.apply(x), lower(qm), xq)``
  equals ``qm.forward_int(xq)`` exactly, shape included.
* ``Stage = Affine | Square | Poly | Requantize``; ``stage.kind`` is a :class:`StageKind`.
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
* :class:`Requantize`: ``multiplier``, ``shift``, ``limit`` (per feature),
  ``rounding``, ``factor`` (M/2**s as floats), ``rounding_error`` (1/2 where
  s >= 1, else 0), ``rounded(x)`` (no clip), ``unclipped(m)``, ``can_clip``,
  ``is_identity``; ``clipped(qm, xq)`` says which inputs some requantize clips.

Backends refuse kinds they do not evaluate with a typed error
(:class:`~secquant.errors.UnsupportedLayerError` or a subclass).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.quant import exact, intops
from secquant.quant.intops import IntOp, IntPoly, IntRequantize, IntSquare, max_abs
from secquant.quant.model import QuantizedModel
from secquant.quant.stage_base import Affine, IntArray, Shape, StageKind
from secquant.quant.stage_elementwise import Poly, Requantize, Rounding, Square

__all__ = ["AFFINE_OPS", "Affine", "Poly", "Requantize", "Rounding", "Square", "Stage", "StageKind", "clipped",
           "lower"]

#: Op types that compose into an :class:`Affine` stage.
AFFINE_OPS: tuple[type[IntOp], ...] = (intops.IntLinear, intops.IntConv2d, intops.IntSumPool2d, intops.IntFlatten,
                                       intops.IntAddConst)


Stage: TypeAlias = Affine | Square | Poly | Requantize


def _one_linear(ops: list[IntOp], in_shape: Shape) -> tuple[IntArray, IntArray, Shape] | None:
    """(W, b, out_shape) when the run is one linear op between flattens (a linearized stage), else None.

    Its matrix is its weight: running d unit vectors through it would cost a
    d x d x d_out exact product (minutes for a linearized ResNet on MNIST).
    """
    core = [op for op in ops if not isinstance(op, intops.IntFlatten)]
    if (len(core) != 1 or not isinstance(core[0], intops.IntLinear)
            or np.shape(core[0].weight)[1] != int(np.prod(in_shape, dtype=np.int64))):
        return None
    shape = in_shape
    for op in ops:
        shape = op.output_shape(shape)
    return np.asarray(core[0].weight), np.asarray(core[0].bias).reshape(-1), shape


def _affine_map(ops: list[IntOp], in_shape: Shape) -> tuple[IntArray, IntArray, Shape]:
    """(A, b, out_shape) of a chain of affine ops, from its outputs on 0 and on every unit vector.

    Each op runs with a bound proven for inputs in [-1, 1] (interval
    arithmetic through the chain), so every value is exact.  A lone linear
    op (between flattens) is its own weight and bias.
    """
    single = _one_linear(ops, in_shape)
    if single is not None:
        return single
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


def _broadcast_flat(values: Any, shape: Shape) -> IntArray:
    """A requantize op's per-channel (or per-feature) array over one input, flattened (as ``forward`` broadcasts it)."""
    return np.array(np.broadcast_to(np.asarray(values), shape)).reshape(-1)


_ELEMENTWISE_OPS: tuple[type[IntOp], ...] = (IntSquare, IntPoly, IntRequantize)


def _unsupported(ops: tuple[IntOp, ...]) -> list[str]:
    known = [cls.__name__ for cls in (*AFFINE_OPS, *_ELEMENTWISE_OPS)]
    return [f"{op.name} ({op.kind}): encrypted backends evaluate only {', '.join(known)}"
            for op in ops if not isinstance(op, (*AFFINE_OPS, *_ELEMENTWISE_OPS))]


def _per_feature(lo: Any, hi: Any) -> IntArray:
    lo_o, hi_o = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
    return np.maximum(np.abs(lo_o), np.abs(hi_o)).reshape(-1)


def _as_chain(qm: QuantizedModel) -> QuantizedModel:
    """``qm`` itself when it is a chain of ops the lowering knows, else its :func:`~secquant.quant.linearize.linearize`."""
    if not isinstance(qm, QuantizedModel):  # a chain-like stand-in (tests): take its ops as they are
        return qm
    if qm.is_chain and all(isinstance(op, (*AFFINE_OPS, *_ELEMENTWISE_OPS)) for op in qm.ops):
        return qm
    from secquant.quant.linearize import linearize

    return linearize(qm)


def _elementwise(op: IntOp, shape: Shape, m_in: IntArray, out: IntArray) -> Stage:
    """The stage of one square, poly or requantize op on inputs of ``shape``."""
    if isinstance(op, IntPoly):
        return Poly((op.name,), shape, shape, m_in, out, _poly_coeffs(op, shape))
    if isinstance(op, IntRequantize):
        return Requantize((op.name,), shape, shape, m_in, out, _broadcast_flat(op.multiplier, shape),
                          _broadcast_flat(op.shift, shape), _broadcast_flat(op.limit, shape))
    return Square((op.name,), shape, shape, m_in, out)


def _with_output_shape(stages: list[Stage], shape: Shape) -> list[Stage]:
    """The last stage reshaped to the model's output ``shape`` (a linearized graph flattens its output)."""
    last = stages[-1] if stages else None
    if last is None or last.out_shape == shape:
        return stages
    if isinstance(last, Affine):
        stages[-1] = replace(last, out_shape=shape)
    else:  # an element-wise last stage: a reshape after it (a value-free affine stage)
        eye = np.eye(last.out_features, dtype=np.int64)
        stages.append(Affine((f"{last.names[-1]}.reshape",), last.out_shape, shape, last.out_bound, last.out_bound,
                             eye, np.zeros(last.out_features, dtype=np.int64)))
    return stages


def _stages(chain: QuantizedModel) -> list[Stage]:
    """The stages of a chain of ops the lowering knows (consecutive affine ops merged).

    Raises:
        UnsupportedLayerError: an op is neither affine nor a square, a polynomial or a requantize.
        ConfigError: a polynomial's coefficients do not fit its input shape.
    """
    ops = tuple(chain.ops)
    problems = _unsupported(ops)
    if problems:
        raise UnsupportedLayerError(problems)
    report = chain.bounds()
    shape: Shape = tuple(chain.input_shape)
    m_in = _per_feature(report.input.lo, report.input.hi)
    stages: list[Stage] = []
    k = 0
    while k < len(ops):
        if isinstance(ops[k], AFFINE_OPS):
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
            stage = _elementwise(ops[k], shape, m_in, _per_feature(layer.lo, layer.hi))
            k += 1
        stages.append(stage)
        shape, m_in = stage.out_shape, stage.out_bound
    return stages


def _with_support(qm: QuantizedModel, stages: list[Stage]) -> list[Stage]:
    """``stages`` whose affine stages carry the support of ``qm``'s structural twin (:mod:`~.support`).

    An affine stage whose ops the twin's chain does not hold alike (the linearization of a
    twin can omit an op that is the identity only there) keeps ``matrix != 0``.
    """
    from secquant.quant.support import structural_twin

    twin = _as_chain(structural_twin(qm))
    ops = {op.name: op for op in twin.ops}
    out: list[Stage] = []
    for st in stages:
        run = [ops.get(name) for name in st.names] if isinstance(st, Affine) else []
        if isinstance(st, Affine) and all(isinstance(op, AFFINE_OPS) for op in run):
            pattern = np.asarray(_affine_map([op for op in run if op is not None], st.in_shape)[0] != 0)
            if pattern.shape == st.matrix.shape:
                st = replace(st, support=pattern)
        out.append(st)
    return out


def lower(qm: QuantizedModel) -> tuple[Stage, ...]:
    """The stages of ``qm``, with consecutive affine ops merged into one :class:`Affine`.

    A chain of the ops the lowering knows is lowered as it is (stage names are
    its op names).  Any other model (a DAG with residual adds or
    concatenations, or a chain with other affine ops: BatchNorm scale ops,
    Conv1d) is first laid out as an equivalent chain by
    :func:`secquant.quant.linearize.linearize`, whose values a later layer
    still needs ride along as pass-through features; its stages are named
    ``stage{k}.affine|square|poly|requantize``, and the last one has the
    model's output shape.  Every :class:`Affine` carries its ``support``: the
    entries the layers' geometry lets be nonzero, whatever the weights.

    Raises:
        UnsupportedLayerError: an op is neither affine nor a square, a polynomial or a requantize.
        ConfigError: a polynomial's coefficients do not fit its input shape.
    """
    cached = qm.__dict__.get("_lowered") if isinstance(qm, QuantizedModel) else None
    if cached is not None:  # a linearized model is lowered once (a ResNet on MNIST takes seconds); it is frozen
        return cached
    chain = _as_chain(qm)
    stages = _stages(chain)
    if isinstance(qm, QuantizedModel):
        stages = _with_support(qm, stages)
    out = tuple(_with_output_shape(stages, tuple(qm.output_shape)) if chain is not qm else stages)
    if isinstance(qm, QuantizedModel) and chain is not qm:
        object.__setattr__(qm, "_lowered", out)
    return out


def clipped(qm: QuantizedModel, xq: Any) -> NDArray[np.bool_]:
    """Per input of ``xq`` (integers of shape (n, *input_shape)): whether some requantize op clips it.

    A scheme that cannot compare (CKKS) follows ``forward_int`` within its
    stated bound only on the inputs where this is False.
    """
    x = np.asarray(xq)
    hit = np.zeros(len(x), dtype=bool)
    for st in lower(qm):
        y = st.apply(x)
        if isinstance(st, Requantize) and st.can_clip:
            rounded = np.asarray(st.rounded(x)).reshape(len(x), -1)
            hit |= np.any(rounded != np.asarray(y).reshape(len(x), -1), axis=1)
        x = y
    return hit
