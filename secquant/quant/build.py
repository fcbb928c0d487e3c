"""From a graph of torch layers to a graph of integer ops, with requantization where configured.

:func:`build_graph` walks the layers in order, asks each layer's converter for
its integer ops (given the :class:`ConvState` of its inputs), wires them as
nodes, and, when ``cfg.requantize`` is set, tracks the proven interval of every
node to insert :class:`~secquant.quant.intops.IntRequantize` ops where the
configuration says.  ``quantize_model`` and QAT both run it, so both see the
same ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from secquant.errors import ConfigError, SecquantError, UnsupportedLayerError
from secquant.nn.layers import Poly, Square
from secquant.quant.config import QuantConfig
from secquant.quant.converters_graph import merge_converter_for
from secquant.quant.dag import INPUT, IntGraph, IntNode
from secquant.quant.graph import GraphLayer
from secquant.quant.intops import IntAddConst, IntOp, max_abs
from secquant.quant.primitives import Domain, modulus_needed
from secquant.quant.registry import ConvState, converter_for, suggestion_for
from secquant.quant.requantize import RequantizeAt, RequantizeConfig, requantize_ops

__all__ = ["Built", "BuiltNode", "build_graph", "convert_layer"]

Interval = tuple[Any, Any]


@dataclass(frozen=True, eq=False)
class BuiltNode:
    """One integer node and where it came from.

    Attributes:
        node: The node.
        layer: The torch layer it belongs to (None for requantize and output zero-point ops).
        before: States of the layer's inputs, as its converter saw them.
        after: State of the layer's output.
    """

    node: IntNode
    layer: GraphLayer | None
    before: tuple[ConvState, ...]
    after: ConvState


@dataclass(eq=False)
class Built:
    """The integer graph of a model and the state of its output."""

    nodes: list[BuiltNode] = field(default_factory=list)
    output: ConvState | None = None

    @property
    def graph(self) -> IntGraph:
        """The integer ops as a graph."""
        return IntGraph(tuple(b.node for b in self.nodes))


def convert_layer(layer: GraphLayer, states: Sequence[ConvState], cfg: QuantConfig) -> tuple[list[IntOp], ConvState]:
    """The integer ops of one layer and the state of its output.

    Raises:
        ConfigError: the layer cannot take these inputs.
    """
    merge = merge_converter_for(layer.module)
    single = converter_for(layer.module)
    if merge is None and single is None:
        raise UnsupportedLayerError([f"{layer.name} ({type(layer.module).__name__}): {suggestion_for(layer.module)}"])
    if merge is None and len(states) != 1:
        raise ConfigError(f"{layer.name}: {type(layer.module).__name__} reads {len(states)} tensors; it takes one")
    scale_error = ConfigError(
        f"{layer.name}: the integer scale leaves the float64 range here (the exact integers would need "
        "over a thousand bits); requantize between layers with requantize=RequantizeConfig(), or use "
        "fewer layers or bits"
    )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if merge is not None:
                ops, after = merge(layer.module, layer.name, states, cfg)
            elif single is not None:
                ops, after = single(layer.module, layer.name, states[0], cfg)
    except OverflowError as exc:  # int(inf): a weight scaled by an infinite scale
        if isinstance(exc, SecquantError):
            raise
        raise scale_error from exc
    scale = np.asarray(after.scale, dtype=np.float64)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise scale_error
    return ops, after


def _bits(lo: Any, hi: Any) -> int:
    needed = modulus_needed(int(np.min(lo)), int(np.max(hi)), Domain.CENTERED) or 2
    return (needed - 1).bit_length()


def _is_activation(layer: GraphLayer) -> bool:
    return isinstance(layer.module, (Square, Poly))


class _Builder:
    def __init__(self, state: ConvState, interval: Interval | None, sample: Any, cfg: QuantConfig) -> None:
        self.cfg = cfg
        self.rq: RequantizeConfig | None = cfg.requantize
        self.out = Built()
        self.states: dict[str, ConvState] = {INPUT: state}
        self.intervals: dict[str, Interval] = {INPUT: interval} if interval is not None else {}
        self.values: dict[str, Any] = {INPUT: sample} if sample is not None else {}
        self.where: dict[str, str] = {INPUT: INPUT}
        self.rescaled: dict[str, str] = {}
        self.names = {INPUT}

    def emit(self, ops: Sequence[IntOp], inputs: Sequence[str], layer: GraphLayer | None,
             before: tuple[ConvState, ...], after: ConvState) -> str:
        """Add ``ops`` as a chain reading ``inputs``; return the last node's name (or the input's)."""
        current = list(inputs)
        for op in ops:
            name, k = op.name, 1
            while name in self.names:
                k += 1
                name = f"{op.name}_{k}"
            op = op if name == op.name else replace(op, name=name)
            self.names.add(name)
            node = IntNode(op, tuple(current))
            self.out.nodes.append(BuiltNode(node, layer, before, after))
            if self.rq is not None:
                iv = [self.intervals[i] for i in current]
                self.intervals[name] = op.interval_of([v[0] for v in iv], [v[1] for v in iv])
            if self.values:
                xs = [self.values[i] for i in current]
                self.values[name] = op.apply(xs, op.runtime_bound(max(max_abs(x) for x in xs)))
            current = [name]
        if len(current) != 1:
            raise ConfigError(f"{layer.name if layer else '?'}: a step over several tensors produced no op")
        self.states[current[0]] = after
        return current[0]

    def rescale(self, src: str) -> str:
        """``src`` requantized to the target bits (a new node, made once), or ``src`` if already within them."""
        if self.rq is None or src in self.rescaled:
            return self.rescaled.get(src, src)
        lo, hi = self.intervals[src]
        ops, state = requantize_ops(src, self.states[src], lo, hi, self.values.get(src), self.rq)
        self.rescaled[src] = self.emit(ops, [src], None, (self.states[src],), state) if ops else src
        return self.rescaled[src]

    def trial_bits(self, ops: Sequence[IntOp], srcs: Sequence[str]) -> int:
        """Largest bits any of ``ops`` needs when it reads ``srcs``."""
        iv = [self.intervals[s] for s in srcs]
        los, his, worst = [v[0] for v in iv], [v[1] for v in iv], 0
        for op in ops:
            lo, hi = op.interval_of(los, his)
            worst, los, his = max(worst, _bits(lo, hi)), [lo], [hi]
        return worst

    def layer(self, layer: GraphLayer) -> None:
        srcs = [self.where[i] for i in layer.inputs]
        rq = self.rq
        if rq is not None and rq.at is RequantizeAt.BEFORE_ACTIVATION and _is_activation(layer):
            srcs = [self.rescale(s) for s in srcs]
        ops, after = convert_layer(layer, [self.states[s] for s in srcs], self.cfg)
        if (rq is not None and rq.at is RequantizeAt.BUDGET and rq.budget_bits is not None
                and self.trial_bits(ops, srcs) > rq.budget_bits):
            srcs = [self.rescale(s) for s in srcs]
            ops, after = convert_layer(layer, [self.states[s] for s in srcs], self.cfg)
            bits = self.trial_bits(ops, srcs)
            if bits > rq.budget_bits:
                raise ConfigError(
                    f"{layer.name}: needs {bits} bits even from {rq.target_bits}-bit inputs, past budget_bits="
                    f"{rq.budget_bits}; raise budget_bits, or lower target_bits or the weight bits"
                )
        before = tuple(self.states[s] for s in srcs)
        last = self.emit(ops, srcs, layer, before, after) if ops else srcs[0]
        if not ops:
            self.states[last] = after
        self.where[layer.name] = last
        if rq is not None and rq.at is RequantizeAt.AFTER_ACTIVATION and _is_activation(layer):
            self.where[layer.name] = self.rescale(last)


def build_graph(layers: Sequence[GraphLayer], state: ConvState, cfg: QuantConfig,
                interval: Interval | None = None, sample: Any = None) -> Built:
    """Convert ``layers`` (in topological order, the output last) into integer nodes.

    Args:
        layers: The model's layers, BatchNorm already folded where it can be.
        state: The input's state (shape, scale, zero point).
        cfg: Quantization choices; ``cfg.requantize`` enables requantization.
        interval: Per-element (lo, hi) input integers; required with requantization.
        sample: Input integers of calibration examples, shape (n, *input_shape);
            required with requantization from the calibration range.

    Raises:
        ConfigError: a layer cannot take its inputs, or a requantization budget cannot be met.
    """
    if cfg.requantize is not None and interval is None:
        raise ConfigError("requantization needs the input interval")
    b = _Builder(state, interval, sample if cfg.requantize is not None else None, cfg)
    for layer in layers:
        b.layer(layer)
    out = b.where[layers[-1].name] if layers else INPUT
    final = b.states[out]
    if final.has_offset:
        zp = IntAddConst(name="output.zero_point", constant=-np.asarray(final.full_offset()))
        out = b.emit([zp], [out], None, (final,), ConvState(final.shape, final.scale, np.zeros((), np.int64)))
    if out == INPUT:
        raise ConfigError("the model computes nothing from its input; add a layer")
    _keep_reaching(b.out, out)
    b.out.output = b.states[out]
    return b.out


def _keep_reaching(built: Built, output: str) -> None:
    """Drop nodes the output does not read (e.g. a requantized copy no layer used), output last."""
    needed = {output}
    for bn in reversed(built.nodes):
        if bn.node.name in needed:
            needed.update(bn.node.inputs)
    built.nodes[:] = [bn for bn in built.nodes if bn.node.name in needed]
    if built.nodes[-1].node.name != output:
        raise ConfigError(f"internal: output node {output!r} is not last")

