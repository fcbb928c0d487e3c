"""Bound analysis: prove that no integer of the model leaves (-p/2, p/2].

Interval arithmetic runs from the input range through every integer op, in
exact integers.  For each layer it records the per-element interval of its
outputs (``lo``, ``hi``), the worst-case absolute output (``max_abs``), a bound on
every partial sum or product formed inside it (``partial_max_abs``; approximate
schemes care about these), and the smallest modulus that holds the outputs.

Exact schemes (BFV, Paillier) compute in the ring Z_p, so what must fit is the
value of every layer that is ever decoded; secquant holds itself to the
stricter rule that *every* layer's outputs fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ModulusOverflowError
from secquant.quant.dag import INPUT, IntGraph
from secquant.quant.intops import IntOp, max_abs
from secquant.quant.primitives import Domain, modulus_needed, window

__all__ = ["BoundReport", "LayerBound", "analyze"]


@dataclass(frozen=True, eq=False)
class LayerBound:
    """Proven bounds of one layer's integers.

    Attributes:
        name: Layer name (``"input"`` for the quantized input).
        kind: Integer op kind.
        shape: Shape of one output.
        lo, hi: Exact per-element interval of the outputs.
        max_abs: Worst-case |output integer|.
        partial_max_abs: Worst-case |partial sum or product| inside the layer.
        modulus_needed: Smallest modulus p whose window (-p/2, p/2] holds the outputs.
        observed_max_abs: Largest |output| seen on calibration data, if measured.
        inputs: Names of the layers it reads (``"input"`` for the model input).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    lo: NDArray[Any] = field(repr=False)
    hi: NDArray[Any] = field(repr=False)
    max_abs: int
    partial_max_abs: int
    modulus_needed: int
    observed_max_abs: int | None = None
    inputs: tuple[str, ...] = ()

    @property
    def bits(self) -> int:
        """Bits of a signed integer that holds every output: ceil(log2(modulus_needed))."""
        return (self.modulus_needed - 1).bit_length()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (big ints as ints; JSON has no size limit)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "max_abs": self.max_abs,
            "partial_max_abs": self.partial_max_abs,
            "modulus_needed": self.modulus_needed,
            "bits": self.bits,
            "observed_max_abs": self.observed_max_abs,
            "inputs": list(self.inputs),
        }


@dataclass(frozen=True, eq=False)
class BoundReport:
    """Bounds of every layer, and what the whole network needs."""

    input: LayerBound
    layers: tuple[LayerBound, ...]

    @property
    def max_abs(self) -> int:
        """Worst-case |integer| over the input and every layer's outputs."""
        return max(b.max_abs for b in (self.input, *self.layers))

    @property
    def partial_max_abs(self) -> int:
        """Worst-case |partial sum or product| anywhere in the network."""
        return max(b.partial_max_abs for b in (self.input, *self.layers))

    @property
    def modulus_needed(self) -> int:
        """Smallest modulus that holds the whole network without wrap-around."""
        return max(b.modulus_needed for b in (self.input, *self.layers))

    @property
    def bits(self) -> int:
        """ceil(log2(modulus_needed))."""
        return (self.modulus_needed - 1).bit_length()

    @property
    def is_chain(self) -> bool:
        """Whether each layer reads exactly the one before it."""
        previous = self.input.name
        for b in self.layers:
            if b.inputs and b.inputs != (previous,):
                return False
            previous = b.name
        return True

    @property
    def output(self) -> LayerBound:
        """Bounds of the final layer."""
        return self.layers[-1] if self.layers else self.input

    def check(self, modulus: int) -> None:
        """Raise unless every layer fits the CENTERED window of ``modulus``.

        Raises:
            ModulusOverflowError: naming the first layer that does not fit and
                the modulus the whole network needs.
        """
        lo_w, hi_w = window(modulus, Domain.CENTERED)
        for b in (self.input, *self.layers):
            if int(np.min(b.lo)) < lo_w or int(np.max(b.hi)) > hi_w:
                raise ModulusOverflowError(
                    f"layer {b.name!r} ({b.kind}) reaches |integer| up to {b.max_abs}, which needs a "
                    f"modulus of at least {b.modulus_needed}; the modulus {modulus} represents only "
                    f"[{lo_w}, {hi_w}]. The whole network needs p >= {self.modulus_needed} "
                    f"({self.bits} bits): use a larger modulus (BFV can split it over CRT primes) "
                    "or fewer bits.",
                    layer=b.name,
                    bound=b.max_abs,
                    modulus=modulus,
                    modulus_needed=self.modulus_needed,
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "input": self.input.to_dict(),
            "layers": [b.to_dict() for b in self.layers],
            "max_abs": self.max_abs,
            "partial_max_abs": self.partial_max_abs,
            "modulus_needed": self.modulus_needed,
            "bits": self.bits,
        }

    def table(self) -> str:
        """A fixed-width text table, one row per layer (with the layers each reads when the model branches)."""
        graph = not self.is_chain
        rows = [("layer", "kind", "shape", "max |int|", "observed", "bits", *(("reads",) if graph else ()))]
        for b in (self.input, *self.layers):
            observed = "-" if b.observed_max_abs is None else str(b.observed_max_abs)
            reads = (", ".join(b.inputs) or "-",) if graph else ()
            rows.append((b.name, str(b.kind), "x".join(map(str, b.shape)), str(b.max_abs), observed, str(b.bits), *reads))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        lines.append(f"modulus needed: {self.modulus_needed} ({self.bits} bits)")
        return "\n".join(lines)


def _layer_bound(name: str, kind: str, lo: NDArray[Any], hi: NDArray[Any], partial: int, observed: int | None,
                 inputs: tuple[str, ...] = ()) -> LayerBound:
    lo_o, hi_o = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
    vmin, vmax = int(np.min(lo_o)), int(np.max(hi_o))
    return LayerBound(
        name=name,
        kind=kind,
        shape=tuple(lo_o.shape),
        lo=lo_o,
        hi=hi_o,
        max_abs=max_abs(lo_o, hi_o),
        partial_max_abs=max(partial, max_abs(lo_o, hi_o)),
        modulus_needed=modulus_needed(vmin, vmax, Domain.CENTERED),
        observed_max_abs=observed,
        inputs=inputs,
    )


def analyze(
    input_lo: NDArray[Any],
    input_hi: NDArray[Any],
    ops: list[IntOp] | tuple[IntOp, ...] | IntGraph,
    observed: list[int] | None = None,
) -> BoundReport:
    """Propagate the input interval through the ops of a chain or a graph.

    Args:
        input_lo, input_hi: Per-element integer bounds of one input (broadcast
            to its shape).
        ops: The integer ops of a chain in order, or an :class:`IntGraph`.
        observed: Optional observed |max| per op (same length and order).
    """
    graph = ops if isinstance(ops, IntGraph) else IntGraph.chain(ops)
    intervals = {INPUT: (np.asarray(input_lo, dtype=object), np.asarray(input_hi, dtype=object))}
    layers = []
    for i, node in enumerate(graph.nodes):
        los = [intervals[n][0] for n in node.inputs]
        his = [intervals[n][1] for n in node.inputs]
        partial = max_abs(node.op.partial_of([np.maximum(np.abs(a), np.abs(b)) for a, b in zip(los, his)]))
        lo, hi = node.op.interval_of(los, his)
        intervals[node.name] = (np.asarray(lo, dtype=object), np.asarray(hi, dtype=object))
        layers.append(_layer_bound(node.name, node.op.kind.value, lo, hi, partial,
                                   observed[i] if observed else None, node.inputs))
    in_bound = _layer_bound(INPUT, "input", *intervals[INPUT], 0, None)
    return BoundReport(input=in_bound, layers=tuple(layers))
