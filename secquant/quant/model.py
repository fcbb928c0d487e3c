"""The integer model: the plaintext oracle every encrypted backend must match.

Entry points are separate for floats and integers:

* :meth:`QuantizedModel.quantize_input`: floats -> integers (client side);
* :meth:`QuantizedModel.forward_int`: integers -> exact centered integers;
* :meth:`QuantizedModel.dequantize_output`: integers -> float scores;
* :meth:`QuantizedModel.predict`: all three.

The integers flow through an :class:`~secquant.quant.dag.IntGraph`: a chain
for sequential models, a DAG for residual connections and concatenations.
Backends that take chains read :attr:`QuantizedModel.ops`; a branching model
is first laid out as an equivalent chain by :func:`secquant.quant.linearize.linearize`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError, InputRangeError
from secquant.quant import exact
from secquant.quant.bounds import BoundReport, analyze
from secquant.quant.dag import GraphModelError, IntGraph, IntNode
from secquant.quant.interface import InputQuant, ModelInterface
from secquant.quant.intops import IntOp, max_abs

__all__ = ["InputQuant", "ModelInterface", "QuantizedModel", "observed_max"]


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """An integer network with its input quantization and output scales.

    Build one with :func:`secquant.quantize_model`; load one with :meth:`load`.

    Attributes:
        input_quant: How floats become input integers.
        graph: The integer ops as an :class:`IntGraph`; a sequence of ops is
            taken as a chain.
        output_scale: float64 per output element; scores are ``y / output_scale``.
        modulus: The plaintext modulus the model was checked against.
        config: JSON-ready description of how it was quantized.
        observed: Largest |output| per node on calibration data (or None).

    Raises:
        ModulusOverflowError: some node does not fit ``modulus``.
        ConfigError: a malformed graph.
    """

    input_quant: InputQuant
    graph: IntGraph
    output_scale: NDArray[np.float64]
    modulus: int
    config: dict[str, Any] = field(default_factory=dict)
    observed: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.graph, IntGraph):
            object.__setattr__(self, "graph", IntGraph.chain(tuple(self.graph)))
        object.__setattr__(self, "output_scale", np.asarray(self.output_scale, dtype=np.float64))
        if self.observed is not None and len(self.observed) != len(self.graph.nodes):
            raise ConfigError(f"observed has {len(self.observed)} entries for {len(self.graph.nodes)} nodes")
        self.bounds().check(self.modulus)

    # -- structure ----------------------------------------------------------
    @property
    def nodes(self) -> tuple[IntNode, ...]:
        """Every node of the graph, in topological order."""
        return self.graph.nodes

    @property
    def is_chain(self) -> bool:
        """Whether the integer ops form a chain (no residual add, no concatenation)."""
        return self.graph.is_chain

    @property
    def ops(self) -> tuple[IntOp, ...]:
        """The integer ops of a chain, in order.

        Raises:
            GraphModelError: the model branches; use :attr:`graph`, or
                ``secquant.quant.linearize.linearize(qm)`` for an equivalent chain.
        """
        if not self.graph.is_chain:
            merges = [n.name for n in self.graph.nodes if len(n.inputs) != 1][:3]
            raise GraphModelError(
                f"this integer model is a graph, not a chain (it merges branches at {merges}); read qm.graph, "
                "or lay it out as an equivalent chain with secquant.quant.linearize.linearize(qm)"
            )
        return self.graph.ops

    # -- shapes and bounds -------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return self.input_quant.shape

    @cached_property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output."""
        return self.graph.shapes(self.input_shape)[self.graph.output]

    def bounds(self) -> BoundReport:
        """Proven per-node bounds and the modulus the network needs (cached)."""
        cached = self.__dict__.get("_bounds")
        if cached is None:
            lo = np.full(self.input_shape, self.input_quant.lo, dtype=object)
            hi = np.full(self.input_shape, self.input_quant.hi, dtype=object)
            cached = analyze(lo, hi, self.graph, list(self.observed) if self.observed else None)
            object.__setattr__(self, "_bounds", cached)
        return cached

    @property
    def modulus_needed(self) -> int:
        """Smallest modulus that holds every node without wrap-around."""
        return self.bounds().modulus_needed

    @property
    def multiplicative_depth(self) -> int:
        """Ciphertext-by-ciphertext multiplications on the longest path through the network."""
        return self.graph.multiplicative_depth()

    # -- the three entry points --------------------------------------------
    def quantize_input(self, x: ArrayLike, *, rng: np.random.Generator | None = None) -> NDArray[np.int64]:
        """Quantize float inputs of shape (n, *input_shape) (or one input) to integers.

        Raises:
            ConfigError: wrong shape or non-finite values.
            InputRangeError: a value lies outside the calibrated range and the
                model was built with ``input_overflow=RAISE``.
        """
        return self.interface().quantize_input(x, rng=rng)

    def forward_int(self, xq: ArrayLike) -> NDArray[Any]:
        """Run the integer network exactly.

        Args:
            xq: Integers of shape (n, *input_shape) (or one input) within the
                input range.

        Returns:
            Centered integers of shape (n, *output_shape): int64, or Python ints
            (object dtype) when a bound passes 2**63.

        Raises:
            ConfigError: wrong shape or non-integer values.
            InputRangeError: an integer lies outside the input range.
        """
        return self.forward_all(xq, keep=False)[self.graph.output]

    def forward_all(self, xq: ArrayLike, *, keep: bool = True) -> dict[str, NDArray[Any]]:
        """Every node's exact output (and ``"input"``), as :meth:`forward_int` computes them.

        Raises:
            ConfigError: wrong shape or non-integer values.
            InputRangeError: an integer lies outside the input range.
        """
        arr = np.asarray(xq)
        if arr.dtype.kind not in "iuO":
            raise ConfigError(f"forward_int takes integers, got dtype {arr.dtype}; use quantize_input first")
        arr = self.interface().batched(arr)
        iq = self.input_quant
        if arr.size and (int(np.min(arr)) < iq.lo or int(np.max(arr)) > iq.hi):
            raise InputRangeError(f"input integers must lie in [{iq.lo}, {iq.hi}], the range the bounds assume")
        x = exact.as_exact(arr, max(abs(iq.lo), abs(iq.hi)))
        layers = self.bounds().layers
        return self.graph.evaluate(x, lambda k, node, inputs: layers[k].partial_max_abs, keep=keep)

    def dequantize_output(self, y: ArrayLike) -> NDArray[np.float64]:
        """Float scores from output integers: ``y / output_scale``."""
        return self.interface().dequantize_output(y)

    def predict(self, x: ArrayLike) -> NDArray[np.float64]:
        """Float scores for float inputs: quantize, :meth:`forward_int`, dequantize."""
        return self.dequantize_output(self.forward_int(self.quantize_input(x)))

    def _batched(self, arr: NDArray[Any]) -> NDArray[Any]:
        return self.interface().batched(arr)

    def interface(self) -> ModelInterface:
        """What a client may know: shapes, input quantization, output scale and bound; no weights (cached)."""
        cached = self.__dict__.get("_interface")
        if cached is None:
            cached = ModelInterface(input_quant=self.input_quant, output_scale=self.output_scale,
                                    output_shape=self.output_shape, output_max_abs=int(self.bounds().output.max_abs),
                                    modulus=int(self.modulus))
            object.__setattr__(self, "_interface", cached)
        return cached

    # -- description and artifacts -----------------------------------------
    def summary(self) -> dict[str, Any]:
        """Layers, scales, bounds and the modulus, ready for JSON."""
        chain = self.graph.is_chain
        return {
            "input": self.input_quant.to_dict(),
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "layers": [
                {"name": n.name, "kind": n.op.kind.value, **({} if chain else {"inputs": list(n.inputs)}),
                 **n.op.attrs(), **{k: list(np.shape(v)) for k, v in n.op.arrays().items()}}
                for n in self.graph.nodes
            ],
            "output_scale": {"min": float(self.output_scale.min()), "max": float(self.output_scale.max())},
            "modulus": self.modulus,
            "multiplicative_depth": self.multiplicative_depth,
            "bounds": self.bounds().to_dict(),
            "config": self.config,
        }

    def save(self, path: str | os.PathLike[str], sign_with: Any = None, encrypt_with: Any = None) -> Path:
        """Write the model as a typed, versioned, digest-checked ``.npz`` (no pickle).

        ``sign_with`` (an Ed25519 private key file) signs it and ``encrypt_with``
        (a model key) encrypts it at rest; see :mod:`secquant.artifact`.
        """
        from secquant.quant.model_io import save_model

        return save_model(self, path, sign_with=sign_with, encrypt_with=encrypt_with)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | bytes, trusted: Any = None, decrypt_with: Any = None) -> QuantizedModel:
        """Read a model written by :meth:`save` (any artifact version), verifying type, version and digest.

        ``trusted`` (public keys) requires a valid signature by one of them,
        checked before anything else is parsed; ``decrypt_with`` opens an
        encrypted model.  See :func:`secquant.artifact.open_artifact`.

        Raises:
            ArtifactError: not a QuantizedModel, malformed, or encrypted without a key.
            IntegrityError: modified after it was written, unsigned or badly signed when
                ``trusted`` is given, or a wrong key.
        """
        from secquant.quant.model_io import load_model

        return load_model(path, trusted=trusted, decrypt_with=decrypt_with)

    def with_modulus(self, modulus: int) -> QuantizedModel:
        """The same model checked against another modulus.

        Raises:
            ModulusOverflowError: the modulus is too small for some node.
        """
        return QuantizedModel(self.input_quant, self.graph, self.output_scale, int(modulus), self.config, self.observed)


def observed_max(graph: IntGraph | Sequence[IntOp], bounds: BoundReport, xq: NDArray[Any]) -> tuple[int, ...]:
    """Largest |output| of each node on integer inputs ``xq`` (for reports)."""
    g = graph if isinstance(graph, IntGraph) else IntGraph.chain(graph)
    layers = bounds.layers
    values = g.evaluate(xq, lambda k, node, inputs: layers[k].partial_max_abs, keep=True)
    return tuple(max_abs(values[n.name]) for n in g.nodes)
