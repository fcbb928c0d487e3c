"""The integer model's graph: integer ops wired as a DAG (a chain is the common special case).

A node is an :class:`~secquant.quant.intops.IntOp` plus the names of the nodes
it reads; :data:`INPUT` names the quantized input.  Nodes are kept in a
topological order whose last node is the output, and every node reaches the
output (nothing is computed for nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from secquant.errors import ConfigError, SecquantError
from secquant.quant.intops import IntOp
from secquant.quant.ops_base import IntArray, Shape

__all__ = ["INPUT", "GraphModelError", "IntGraph", "IntNode"]

#: Name of the model input in a graph.
INPUT = "input"


class GraphModelError(SecquantError, TypeError):
    """A chain was asked of a model whose integer graph branches (a residual add, a concatenation)."""


@dataclass(frozen=True, eq=False)
class IntNode:
    """One integer op and the names of the nodes whose outputs it reads, in order.

    Attributes:
        op: The integer op; its ``name`` names the node.
        inputs: Producer names (:data:`INPUT` for the model input), one per op input.
    """

    op: IntOp
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))

    @property
    def name(self) -> str:
        """The op's name."""
        return self.op.name


@dataclass(frozen=True, eq=False)
class IntGraph:
    """Integer ops as a DAG, topologically ordered, the last node being the output.

    Raises:
        ConfigError: empty graph, duplicate or reserved names, an input that is
            not an earlier node, a wrong number of inputs, or a node that does
            not reach the output.
    """

    nodes: tuple[IntNode, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        _validate(self.nodes)

    @classmethod
    def chain(cls, ops: Iterable[IntOp]) -> IntGraph:
        """The graph in which each op reads the previous one (the first reads the input)."""
        nodes, previous = [], INPUT
        for op in ops:
            nodes.append(IntNode(op, (previous,)))
            previous = op.name
        return cls(tuple(nodes))

    @property
    def output(self) -> str:
        """Name of the output node."""
        return self.nodes[-1].name

    @property
    def ops(self) -> tuple[IntOp, ...]:
        """Every op, in topological order."""
        return tuple(n.op for n in self.nodes)

    @property
    def is_chain(self) -> bool:
        """Whether every op reads exactly the op before it (the first reads the input)."""
        previous = INPUT
        for node in self.nodes:
            if node.inputs != (previous,):
                return False
            previous = node.name
        return True

    def node(self, name: str) -> IntNode:
        """The node called ``name``.

        Raises:
            KeyError: no such node.
        """
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self) -> dict[str, list[str]]:
        """Producer name (including :data:`INPUT`) -> names of the nodes that read it."""
        out: dict[str, list[str]] = {INPUT: []}
        for n in self.nodes:
            out.setdefault(n.name, [])
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """Shape of one example at the input and at every node."""
        shapes: dict[str, Shape] = {INPUT: tuple(input_shape)}
        for n in self.nodes:
            shapes[n.name] = tuple(int(s) for s in n.op.shape_of([shapes[i] for i in n.inputs]))
        return shapes

    def evaluate(self, x: IntArray, bound: Callable[[int, IntNode, list[IntArray]], int],
                 keep: bool = False) -> dict[str, IntArray]:
        """Run the graph on a batch ``x``.

        Args:
            x: Input integers, batch first.
            bound: ``bound(index, node, inputs)`` -> the bound passed to the
                op's exact kernel (the proven partial bound, or a runtime one).
            keep: Keep every node's output; otherwise only the output's,
                freeing each value after its last reader.

        Returns:
            Node name -> output integers (and :data:`INPUT`).
        """
        last_use: dict[str, int] = {}
        for k, n in enumerate(self.nodes):
            for i in n.inputs:
                last_use[i] = k
        values: dict[str, IntArray] = {INPUT: x}
        for k, n in enumerate(self.nodes):
            inputs = [values[i] for i in n.inputs]
            values[n.name] = n.op.apply(inputs, bound(k, n, inputs))
            if not keep:
                for i in set(n.inputs):
                    if last_use[i] == k:
                        del values[i]
        return values

    def multiplicative_depth(self) -> int:
        """Ciphertext multiplications on the longest path from the input to the output."""
        depth = {INPUT: 0}
        for n in self.nodes:
            depth[n.name] = max(depth[i] for i in n.inputs) + n.op.multiplicative_depth
        return depth[self.output]


def _validate(nodes: Sequence[IntNode]) -> None:
    if not nodes:
        raise ConfigError("an integer graph needs at least one op")
    seen = {INPUT}
    for n in nodes:
        if not isinstance(n, IntNode):
            raise ConfigError(f"graph nodes must be IntNode, got {type(n).__name__}")
        if n.name in seen:
            raise ConfigError(f"node name {n.name!r} is used twice (or is the reserved {INPUT!r})")
        if len(n.inputs) != n.op.arity:
            raise ConfigError(f"node {n.name!r} ({n.op.kind}) takes {n.op.arity} input(s), got {len(n.inputs)}")
        missing = [i for i in n.inputs if i not in seen]
        if missing:
            raise ConfigError(f"node {n.name!r} reads {missing}, which are not earlier nodes")
        seen.add(n.name)
    reaches = {nodes[-1].name}
    for n in reversed(nodes):
        if n.name in reaches:
            reaches.update(n.inputs)
    dead = [n.name for n in nodes if n.name not in reaches]
    if dead:
        raise ConfigError(f"nodes {dead} do not reach the output {nodes[-1].name!r}; drop them")


def describe(nodes: Sequence[IntNode]) -> list[dict[str, Any]]:
    """Name, kind and inputs of each node (for summaries)."""
    return [{"name": n.name, "kind": n.op.kind.value, "inputs": list(n.inputs)} for n in nodes]
