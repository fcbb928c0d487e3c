"""Reading and writing :class:`~secquant.quant.model.QuantizedModel` artifacts (npz + JSON, no pickle).

Versions:

* **1**: a chain; ``meta["layers"]`` lists the ops in order.
* **2** (written now): a graph; each entry of ``meta["layers"]`` also names
  the nodes it reads (``"inputs"``), in topological order, the output last.
  Version-1 files are still read, as chains.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numpy.typing import NDArray

from secquant.artifact import read_artifact, write_artifact
from secquant.errors import ArtifactError
from secquant.quant.dag import INPUT, IntGraph, IntNode
from secquant.quant.interface import InputQuant
from secquant.quant.intops import op_from_parts, op_to_parts

if TYPE_CHECKING:
    from secquant.quant.model import QuantizedModel

__all__ = ["ARTIFACT_TYPE", "ARTIFACT_VERSION", "load_model", "save_model"]

ARTIFACT_TYPE = "secquant.QuantizedModel"
#: The version written; :data:`READABLE_VERSIONS` are read.
ARTIFACT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save_model(qm: QuantizedModel, path: str | os.PathLike[str], *, sign_with: Any = None,
               encrypt_with: Any = None) -> Path:
    """Write ``qm`` as a typed, versioned, digest-checked ``.npz``."""
    arrays: dict[str, NDArray[Any]] = {"output_scale": qm.output_scale}
    layers = []
    for i, node in enumerate(qm.graph.nodes):
        layers.append({**op_to_parts(node.op, f"op{i}", arrays), "inputs": list(node.inputs)})
    meta = {
        "input_quant": qm.input_quant.to_dict(),
        "layers": layers,
        "modulus": str(qm.modulus),
        "config": qm.config,
        "observed": list(qm.observed) if qm.observed else None,
    }
    return write_artifact(path, ARTIFACT_TYPE, ARTIFACT_VERSION, meta, arrays, sign_with=sign_with,
                          encrypt_with=encrypt_with)


def _graph(version: int, layers: list[dict[str, Any]], arrays: dict[str, NDArray[Any]]) -> IntGraph:
    nodes, previous = [], INPUT
    for layer in layers:
        op = op_from_parts(layer["kind"], layer["name"], layer["attrs"],
                           {k: arrays[v] for k, v in layer["arrays"].items()})
        inputs = (previous,) if version == 1 else tuple(str(i) for i in layer["inputs"])
        nodes.append(IntNode(op, inputs))
        previous = op.name
    return IntGraph(tuple(nodes))


def load_model(path: str | os.PathLike[str] | bytes, *, trusted: Any = None, decrypt_with: Any = None) -> QuantizedModel:
    """Read a model written by :func:`save_model` (or by a version-1 writer).

    Raises:
        ArtifactError: not a QuantizedModel, an unknown version, or malformed.
        IntegrityError: the file was modified after it was written.
    """
    from secquant.errors import ConfigError
    from secquant.quant.model import QuantizedModel

    version, meta, arrays = read_artifact(path, ARTIFACT_TYPE, READABLE_VERSIONS, trusted=trusted,
                                          decrypt_with=decrypt_with)
    try:
        iq = meta["input_quant"]
        input_quant = InputQuant(
            scale=float(iq["scale"]), offset=int(iq["offset"]), lo=int(iq["lo"]), hi=int(iq["hi"]),
            rounding=iq["rounding"], on_overflow=iq["on_overflow"], shape=tuple(iq["shape"]),
        )
        graph = _graph(int(version), meta["layers"], arrays)
        observed = tuple(int(v) for v in meta["observed"]) if meta.get("observed") else None
        return QuantizedModel(input_quant=input_quant, graph=graph, output_scale=arrays["output_scale"],
                              modulus=int(meta["modulus"]), config=meta.get("config", {}), observed=observed)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        if isinstance(exc, ConfigError):
            raise ArtifactError(f"malformed QuantizedModel artifact: {exc}") from exc
        raise ArtifactError(f"malformed QuantizedModel artifact: {exc!r}") from exc
