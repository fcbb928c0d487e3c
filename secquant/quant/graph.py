"""Turn a torch model into a flat chain of layers, and fold BatchNorm.

``nn.Sequential`` trees are flattened directly; other modules are traced with
``torch.fx`` and must form a single chain (each operation feeding the next).
Functional calls that have a module equivalent (``torch.flatten``,
``x.view(n, -1)``, ``x * x``, ``F.relu``...) become that module, so the
validator can judge them like any layer.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secquant.errors import UnsupportedLayerError
from secquant.nn.layers import Square

__all__ = ["ChainLayer", "extract_chain", "fold_batchnorm"]


@dataclass(frozen=True, eq=False)
class ChainLayer:
    """One step of the chain: a dotted name and the module that computes it."""

    name: str
    module: nn.Module


def extract_chain(model: nn.Module) -> list[ChainLayer]:
    """Return the layers of ``model`` in execution order.

    Raises:
        UnsupportedLayerError: the model is not a chain, listing every problem.
    """
    if isinstance(model, nn.Sequential):
        return _flatten_sequential(model, "")
    if not list(model.children()):
        return [ChainLayer(type(model).__name__, model)]
    return _trace_chain(model)


def _flatten_sequential(seq: nn.Sequential, prefix: str) -> list[ChainLayer]:
    out: list[ChainLayer] = []
    for key, child in seq.named_children():
        name = f"{prefix}{key}"
        if isinstance(child, nn.Sequential):
            out.extend(_flatten_sequential(child, f"{name}."))
        elif list(child.children()) and not isinstance(child, Square):
            out.extend(ChainLayer(f"{name}.{c.name}", c.module) for c in _trace_chain(child))
        else:
            out.append(ChainLayer(name, child))
    return out


_FLATTEN_FUNCS = {torch.flatten, "flatten", "view", "reshape"}
_SQUARE_FUNCS = {torch.square, "square"}
_FUNCTIONAL_MODULES: dict[Any, type[nn.Module]] = {
    torch.relu: nn.ReLU,
    torch.nn.functional.relu: nn.ReLU,
    "relu": nn.ReLU,
    torch.sigmoid: nn.Sigmoid,
    torch.tanh: nn.Tanh,
    torch.nn.functional.gelu: nn.GELU,
}


def _trace_chain(model: nn.Module) -> list[ChainLayer]:
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for untraceable code
        raise UnsupportedLayerError([f"{type(model).__name__}: cannot be traced into a chain ({exc})"]) from exc
    chain: list[ChainLayer] = []
    problems: list[str] = []
    previous = None
    for node in graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op in ("get_attr", "output"):
            continue
        if not node.args or node.args[0] is not previous:
            problems.append(f"{node.name}: the model is not a simple chain (branching at {node.target})")
        module = _node_module(model, node, previous)
        if module is None:
            problems.append(f"{node.name}: function {getattr(node.target, '__name__', node.target)!s} has no integer form")
        else:
            chain.append(ChainLayer(str(node.target) if node.op == "call_module" else node.name, module))
        previous = node
    if problems:
        raise UnsupportedLayerError(problems)
    return chain


def _node_module(model: nn.Module, node: Any, previous: Any) -> nn.Module | None:
    target = node.target
    if node.op == "call_module":
        return model.get_submodule(target)
    if target in _FLATTEN_FUNCS:
        return nn.Flatten()
    if target in _SQUARE_FUNCS or (target is operator.mul and node.args[0] is node.args[1] is previous):
        return Square()
    if target in (operator.pow, "pow") and len(node.args) > 1 and node.args[1] == 2:
        return Square()
    cls = _FUNCTIONAL_MODULES.get(target)
    return cls() if cls is not None else None


_FOLDABLE = {nn.BatchNorm1d: nn.Linear, nn.BatchNorm2d: nn.Conv2d}


def fold_batchnorm(chain: list[ChainLayer]) -> tuple[list[ChainLayer], list[str]]:
    """Fold each BatchNorm into the Linear or Conv2d just before it.

    The user's modules are not changed; folded layers are copies.

    Returns:
        The new chain and one problem line per BatchNorm that cannot be folded.
    """
    out: list[ChainLayer] = []
    problems: list[str] = []
    for layer in chain:
        bn = layer.module
        if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            prev = out[-1].module if out else None
            if not isinstance(prev, _FOLDABLE[type(bn)]):
                problems.append(
                    f"{layer.name} ({type(bn).__name__}): must directly follow a "
                    f"{_FOLDABLE[type(bn)].__name__} to be folded into it"
                )
                continue
            out[-1] = ChainLayer(out[-1].name, _fold(prev, bn))
            continue
        out.append(layer)
    return out, problems


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
