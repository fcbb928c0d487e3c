"""Lay an integer graph out as an equivalent chain, so that chain-based backends can evaluate it.

A residual connection or a concatenation makes the integer model a DAG.  An
encrypted backend evaluates a chain of stages over one vector of features.
:func:`linearize` turns the DAG into such a chain: the values a later layer
still needs (the skip path of a residual block) are carried through the
element-wise stages as extra *pass-through* features (a polynomial ``x``, a
requantize with ``M = 1, s = 0``), and every affine step between two
element-wise stages (convolutions, pooling, adds, concatenations, BatchNorm
scale ops, reshapes) is composed, exactly, into one integer matrix.

Stages are scheduled by element-wise depth: an element-wise node (square,
poly, requantize) sits one stage after its input; an affine node is computed
in the matrix of the stage after its deepest input.  A value is carried into
every stage between the one that computes it and the last one that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from secquant.quant import exact
from secquant.quant.dag import INPUT, IntGraph, IntNode
from secquant.quant.intops import (
    IntFlatten,
    IntLinear,
    IntOp,
    IntPoly,
    IntRequantize,
    IntSquare,
    max_abs,
)
from secquant.quant.model import QuantizedModel
from secquant.quant.ops_base import IntArray, Shape

__all__ = ["CHAIN_OPS", "linearize"]

#: Op types a linearized chain is made of (and that a chain may hold to be returned unchanged,
#: with conv2d, sumpool2d and add_const, which the backends' lowering composes itself).
CHAIN_OPS: tuple[type[IntOp], ...] = (IntFlatten, IntLinear, IntSquare, IntPoly, IntRequantize)


@dataclass(frozen=True, eq=False)
class _Expr:
    """A value as an affine function of the current feature vector z: ``value = b + z @ a`` (per example)."""

    a: IntArray  # (n_z, *shape)
    b: IntArray  # shape

    @property
    def shape(self) -> Shape:
        return tuple(np.shape(self.b))


def _apply(op: IntOp, exprs: list[_Expr]) -> _Expr:
    """The affine op ``op`` applied to affine expressions, exactly (bias, then the linear part).

    The linear part is ``op(rows) - op(0)`` over the rows of z that reach the
    inputs at all; the other rows stay zero (a carried value reaches half of z).
    """
    biases = [np.asarray(e.b)[None] for e in exprs]
    bias = op.apply(biases, op.runtime_bound(max(max_abs(b) for b in biases)))[0]
    n_z = np.shape(exprs[0].a)[0]
    live = np.zeros(n_z, dtype=bool)
    for e in exprs:
        live |= np.any(np.asarray(e.a).reshape(n_z, -1) != 0, axis=1)
    rows = [np.concatenate([np.zeros((1, *e.shape), dtype=np.asarray(e.a).dtype), np.asarray(e.a)[live]]) for e in exprs]
    out = op.apply(rows, op.runtime_bound(max(max_abs(r) for r in rows)))
    top = 2 * max_abs(out) + 1
    lin = np.zeros((n_z, *np.shape(out)[1:]), dtype=np.int64 if top < exact.INT64_EXACT else object)
    lin[live] = exact.as_exact(out[1:], top) - exact.as_exact(out[0], top)  # int64 unless the values need more
    return _Expr(lin, exact.as_exact(bias, max_abs(bias) + 1))


def _depths(graph: IntGraph) -> dict[str, int]:
    depth = {INPUT: 0}
    for n in graph.nodes:
        depth[n.name] = max(depth[i] for i in n.inputs) + (1 if n.op.elementwise else 0)
    return depth


def _last_levels(graph: IntGraph, depth: dict[str, int]) -> dict[str, int]:
    """Deepest level whose feature vector each value must be expressible from."""
    last = {INPUT: 0, **{n.name: depth[n.name] for n in graph.nodes}}
    for n in graph.nodes:
        need = depth[n.name] - 1 if n.op.elementwise else depth[n.name]
        for i in n.inputs:
            last[i] = max(last[i], need)
    last[graph.output] = max(depth.values())
    return last


class _Layout:
    """Builds the chain stage by stage."""

    def __init__(self, graph: IntGraph, input_shape: Shape, bounds: dict[str, IntArray]) -> None:
        self.graph = graph
        self.bounds = bounds  # value -> proven max |x| per feature (flattened), for pass-through clip limits
        self.nodes = {n.name: n for n in graph.nodes}
        self.order = {INPUT: -1, **{n.name: k for k, n in enumerate(graph.nodes)}}
        self.depth = _depths(graph)
        self.last = _last_levels(graph, self.depth)
        self.shapes = graph.shapes(input_shape)
        self.z: list[str] = [INPUT]  # values whose features make up z, in order
        self.ops: list[IntOp] = []

    def carried(self, level: int) -> list[str]:
        """Values computed before ``level`` that ``level`` or a later stage still reads, in graph order."""
        return sorted((v for v, d in self.depth.items() if d < level <= self.last[v]), key=self.order.__getitem__)

    def exprs(self) -> dict[str, _Expr]:
        """Selection expressions of the values in z."""
        sizes = [int(np.prod(self.shapes[v])) for v in self.z]
        total, out, start = sum(sizes), {}, 0
        for v, size in zip(self.z, sizes):
            a = np.zeros((total, size), dtype=np.int64)
            a[start:start + size] = np.eye(size, dtype=np.int64)
            out[v] = _Expr(a.reshape(total, *self.shapes[v]), np.zeros(self.shapes[v], np.int64))
            start += size
        return out

    def express(self, v: str, known: dict[str, _Expr]) -> _Expr:
        """``v`` as an affine function of z (an affine node of the current level, or a value in z)."""
        if v not in known:
            node = self.nodes[v]
            known[v] = _apply(node.op, [self.express(i, known) for i in node.inputs])
        return known[v]

    def emit_linear(self, rows: list[_Expr], name: str) -> None:
        """Add the matrix computing ``rows`` from z, unless it is z itself."""
        a = np.concatenate([np.asarray(r.a).reshape(np.shape(r.a)[0], -1) for r in rows], axis=1)
        b = np.concatenate([np.asarray(r.b).reshape(-1) for r in rows])
        if a.shape[0] == a.shape[1] and np.array_equal(a, np.eye(a.shape[0], dtype=np.int64)) and not np.any(b != 0):
            return
        weight = exact.as_exact(np.ascontiguousarray(a.T), max_abs(a) + 1)
        self.ops.append(IntLinear(name=name, weight=weight, bias=exact.as_exact(b, max_abs(b) + 1)))

    def stage(self, level: int) -> None:
        """Stage ``level``: the matrix feeding its element-wise nodes and carried values, then the element-wise ops."""
        known = self.exprs()
        elementwise = [n for n in self.graph.nodes if n.op.elementwise and self.depth[n.name] == level]
        passing = [v for v in self.carried(level) if v not in {n.name for n in elementwise}]
        rows = [self.express(n.inputs[0], known) for n in elementwise] + [self.express(v, known) for v in passing]
        self.emit_linear(rows, f"stage{level}.affine")
        sizes = [int(np.prod(r.shape)) for r in rows]
        self.emit_elementwise(level, elementwise, passing, sizes)
        self.z = [n.name for n in elementwise] + passing

    def emit_elementwise(self, level: int, nodes: list[IntNode], passing: list[str], sizes: list[int]) -> None:
        total, n_own = sum(sizes), sum(sizes[: len(nodes)])
        polys = [(k, n) for k, n in enumerate(nodes) if isinstance(n.op, (IntSquare, IntPoly))]
        rescales = [(k, n) for k, n in enumerate(nodes) if isinstance(n.op, IntRequantize)]
        starts = np.cumsum([0, *sizes])
        if polys:
            if all(isinstance(n.op, IntSquare) for _, n in polys) and len(polys) == len(nodes) and n_own == total:
                self.ops.append(IntSquare(name=f"stage{level}.square"))
            else:
                degree = max(2 if isinstance(n.op, IntSquare) else n.op.degree for _, n in polys)
                coeffs: Any = np.zeros((degree + 1, total), dtype=object)
                coeffs[1] = 1
                for k, n in polys:
                    coeffs[:, starts[k]:starts[k + 1]] = _poly_rows(n, degree, self.shapes[n.inputs[0]])
                self.ops.append(IntPoly(name=f"stage{level}.poly", coeffs=exact.as_exact(coeffs, max_abs(coeffs) + 1)))
        if rescales:
            # Features not requantized pass unchanged: M = 1, s = 0, and a clip limit at their proven bound.
            mult, shift = np.ones(total, np.int64), np.zeros(total, np.int64)
            limit = np.concatenate([np.maximum(self.bounds[v], 1) for v in [n.name for n in nodes] + passing])
            for k, n in rescales:
                shape = self.shapes[n.inputs[0]]
                for arr, src in ((mult, n.op.multiplier), (shift, n.op.shift), (limit, n.op.limit)):
                    arr[starts[k]:starts[k + 1]] = np.broadcast_to(src, shape).reshape(-1)
            self.ops.append(IntRequantize(name=f"stage{level}.requantize", multiplier=mult, shift=shift,
                                          limit=exact.as_exact(limit, max_abs(limit))))


def _poly_rows(node: IntNode, degree: int, shape: Shape) -> IntArray:
    """Coefficients (degree+1, features) of a square or poly node, zero-padded to ``degree``."""
    size = int(np.prod(shape))
    out = np.zeros((degree + 1, size), dtype=object)
    if isinstance(node.op, IntSquare):
        out[2] = 1
        return out
    raw = exact.to_python_ints(node.op.coeffs)
    full = np.broadcast_to(raw, (raw.shape[0], *shape)).reshape(raw.shape[0], -1)
    out[: raw.shape[0]] = full
    return out


def _already_chain(qm: QuantizedModel) -> bool:
    from secquant.quant.intops import IntAddConst, IntConv2d, IntSumPool2d

    kinds = (*CHAIN_OPS, IntConv2d, IntSumPool2d, IntAddConst)
    return qm.is_chain and all(type(n.op) in kinds for n in qm.nodes)


def linearize(qm: QuantizedModel) -> QuantizedModel:
    """An equivalent integer model whose ops form a chain of flatten, linear, square, poly and requantize ops.

    A model that is already a chain of ops the backends' lowering knows
    (linear, conv2d, sumpool2d, flatten, add_const, square, poly, requantize)
    is returned as it is.  Otherwise the result is::

        [IntFlatten]                      # when the input is not flat
        for each element-wise stage:
            IntLinear   "stage{k}.affine"  # every affine step since the last stage, composed
                                           # (omitted when it is the identity)
            IntSquare | IntPoly "stage{k}.square|poly"   # per-feature coefficients;
                                           # carried features have the polynomial x
            IntRequantize "stage{k}.requantize"          # per feature; carried: M=1, s=0
        IntLinear "output.affine"          # the output from the last stage (omitted if identity)

    Its ``forward_int(x)`` equals ``qm.forward_int(x).reshape(len(x), -1)``
    exactly (outputs are flattened), with the same input quantization,
    output scale (flattened) and modulus: composing integer affine maps is
    exact, and its proven bounds are never looser than the graph's.

    Raises:
        ModulusOverflowError: never in theory (bounds only tighten); kept as the constructor's check.
    """
    if _already_chain(qm):
        return qm
    report = qm.bounds()
    bounds = {b.name: exact.to_python_ints(np.maximum(np.abs(b.lo), np.abs(b.hi))).reshape(-1)
              for b in (report.input, *report.layers)}
    layout = _Layout(qm.graph, qm.input_shape, bounds)
    if len(qm.input_shape) != 1:
        layout.ops.append(IntFlatten(name="input.flatten"))
    for level in range(1, max(layout.depth.values()) + 1):
        layout.stage(level)
    out = layout.express(qm.graph.output, layout.exprs())
    layout.emit_linear([out], "output.affine")
    if not layout.ops:
        layout.ops.append(IntFlatten(name="output.flatten"))
    scale = np.broadcast_to(qm.output_scale, qm.output_shape).reshape(-1)
    config = {**qm.config, "linearized": True}
    return QuantizedModel(qm.input_quant, IntGraph.chain(layout.ops), scale, qm.modulus, config)
