"""A torch model as a graph of layers, and BatchNorm folding on that graph.

:func:`extract_graph` traces the model with ``torch.fx`` (see
:mod:`secquant.quant.fxtrace`) into :class:`GraphLayer` s: a name, the module
that computes it, and the names of the layers it reads.  Functional calls
become modules, so every step is judged by the same converter registry:
``torch.flatten`` and flattening views become ``nn.Flatten``, ``x * x``
becomes :class:`~secquant.nn.Square`, ``x + y`` an :class:`Add`,
``torch.cat`` a :class:`Concat`, ``F.relu`` an ``nn.ReLU`` (refused later,
with the others).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

__all__ = ["Add", "Concat", "ConstAffine", "GlobalSumPool2d", "GraphLayer", "Reshape", "extract_graph", "fold_batchnorm"]


@dataclass(frozen=True, eq=False)
class GraphLayer:
    """One step of the model: a name, the module that computes it, and the layers it reads.

    Attributes:
        name: Dotted module path for modules (``"features.0"``), the fx node
            name for functional calls (``"add"``, ``"cat_1"``).
        module: The module (an :class:`Add`, :class:`Concat`, ... for functional calls).
        inputs: Names of the layers whose outputs it reads, ``"input"`` for the model input.
    """

    name: str
    module: nn.Module
    inputs: tuple[str, ...]


class Add(nn.Module):
    """``sum_k weights[k] * x_k`` of tensors of one shape (``x + y``, ``x - y``)."""

    def __init__(self, weights: Sequence[float]) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return sum(w * x for w, x in zip(self.weights, xs))  # type: ignore[return-value]


class Concat(nn.Module):
    """``torch.cat(xs, dim)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)


class Reshape(nn.Module):
    """``x.view(*spec)``; ``None`` in ``spec`` stands for the batch size (``x.size(0)``)."""

    def __init__(self, spec: Sequence[int | None]) -> None:
        super().__init__()
        self.spec = tuple(None if s is None else int(s) for s in spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*(x.shape[0] if s is None else s for s in self.spec))


class GlobalSumPool2d(nn.Module):
    """``x.sum((2, 3), keepdim=True)``: global sum pooling, what ``x.sum((2, 3))`` traces to (then a flatten)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum((2, 3), keepdim=True)


class ConstAffine(nn.Module):
    """``scale * x + shift`` with Python numbers (``x * 0.5``, ``x + 1``, ``-x``)."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.scale, self.shift = float(scale), float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def extract_graph(model: nn.Module) -> tuple[list[GraphLayer], list[str]]:
    """Return the layers of ``model`` in a topological order (the output last) and the problems found.

    Raises:
        UnsupportedLayerError: torch.fx cannot trace the model.
    """
    from secquant.quant.fxtrace import trace_layers

    return trace_layers(model)


_FOLDABLE: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.BatchNorm1d: (nn.Linear, nn.Conv1d),
    nn.BatchNorm2d: (nn.Conv2d,),
}


def fold_batchnorm(layers: Sequence[GraphLayer]) -> list[GraphLayer]:
    """Fold each BatchNorm into the Linear or convolution it reads, where that is exact.

    A BatchNorm folds when it reads a Linear/Conv1d (BatchNorm1d) or a Conv2d
    (BatchNorm2d) whose output nothing else reads.  The others stay and
    become integer affine ops.  The user's modules are not changed; folded
    layers are copies.
    """
    readers: dict[str, int] = {}
    for layer in layers:
        for i in layer.inputs:
            readers[i] = readers.get(i, 0) + 1
    out: list[GraphLayer] = []
    position: dict[str, int] = {}
    alias: dict[str, str] = {}
    for layer in layers:
        layer = replace(layer, inputs=tuple(alias.get(i, i) for i in layer.inputs))
        bn = layer.module
        src_index = position.get(layer.inputs[0]) if len(layer.inputs) == 1 else None
        if type(bn) in _FOLDABLE and src_index is not None:
            src = out[src_index]
            if isinstance(src.module, _FOLDABLE[type(bn)]) and readers.get(src.name) == 1:
                out[src_index] = replace(src, module=_fold(src.module, bn))
                alias[layer.name] = src.name
                continue
        position[layer.name] = len(out)
        out.append(layer)
    return out


def _fold(layer: nn.Module, bn: nn.Module) -> nn.Module:
    folded = copy.deepcopy(layer)
    with torch.no_grad():
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
        factor = gamma / std
        w = layer.weight.double() * factor.reshape(-1, *([1] * (layer.weight.dim() - 1)))
        b = layer.bias.double() if layer.bias is not None else torch.zeros_like(std)
        folded.weight = nn.Parameter(w.to(layer.weight.dtype))
        folded.bias = nn.Parameter(((b - bn.running_mean.double()) * factor + beta).to(layer.weight.dtype))
    return folded
