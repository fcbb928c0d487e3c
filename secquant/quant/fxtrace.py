"""Trace a torch model with ``torch.fx`` into :class:`~secquant.quant.graph.GraphLayer` s.

Modules with a registered converter (``secquant.nn.Square`` and ``Poly``
included), activations and the other torch layers are leaves of the trace.
Functional calls map to modules by :func:`functional_module`; calls that only
read shapes (``x.size(0)``, ``x.shape``) are kept aside as metadata, and
aliases (``contiguous``, ``F.dropout``) pass their input through.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from secquant.errors import UnsupportedLayerError
from secquant.nn.layers import Square
from secquant.quant.graph import Add, Concat, ConstAffine, GlobalSumPool2d, GraphLayer, Reshape
from secquant.quant.registry import converter_for

__all__ = ["ACTIVATION_FUNCTIONS", "functional_module", "trace", "trace_layers"]

INPUT = "input"


class _Tracer(torch.fx.Tracer):
    """Leaves: modules with a converter (``Square``, ``Poly``, registered types) and torch's own layers."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, nn.Sequential):
            return False
        return converter_for(m) is not None or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> torch.fx.GraphModule:
    """``model`` traced with secquant's leaves.

    Raises:
        UnsupportedLayerError: fx cannot trace it (data-dependent control flow...).
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        problem = (f"{type(model).__name__}: torch.fx cannot trace it ({str(exc).splitlines()[0]}); write forward() "
                   "without data-dependent control flow, or build the model from nn.Sequential")
        raise UnsupportedLayerError([problem]) from exc
    return torch.fx.GraphModule(model, graph)


def _sig(*params: str, **defaults: Any) -> inspect.Signature:
    items = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params]
    items += [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v) for k, v in defaults.items()]
    return inspect.Signature(items)


def _bind(sig: inspect.Signature, node: Any) -> dict[str, Any]:
    bound = sig.bind(*node.args, **node.kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


_ACT = {
    "relu": (_sig("input", inplace=False), lambda a: nn.ReLU()),
    "gelu": (_sig("input", approximate="none"), lambda a: nn.GELU(approximate=a["approximate"])),
    "silu": (_sig("input", inplace=False), lambda a: nn.SiLU()),
    "sigmoid": (_sig("input"), lambda a: nn.Sigmoid()),
    "tanh": (_sig("input"), lambda a: nn.Tanh()),
    "leaky_relu": (_sig("input", negative_slope=0.01, inplace=False), lambda a: nn.LeakyReLU(a["negative_slope"])),
    "elu": (_sig("input", alpha=1.0, inplace=False), lambda a: nn.ELU(a["alpha"])),
    "softplus": (_sig("input", beta=1.0, threshold=20.0), lambda a: nn.Softplus(a["beta"], a["threshold"])),
}

#: Functional activations (function or method name) -> the key of their module form.
ACTIVATION_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu_: "relu", "relu": "relu", "relu_": "relu",
    F.gelu: "gelu", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", "sigmoid": "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh", "tanh": "tanh", F.leaky_relu: "leaky_relu", F.elu: "elu",
    F.softplus: "softplus",
}

_POOLING = {
    F.avg_pool2d: (_sig("input", "kernel_size", stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None),
                   lambda a: nn.AvgPool2d(a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                                          a["count_include_pad"], a["divisor_override"])),
    F.adaptive_avg_pool2d: (_sig("input", "output_size"), lambda a: nn.AdaptiveAvgPool2d(a["output_size"])),
    F.max_pool2d: (_sig("input", "kernel_size", stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False), lambda a: nn.MaxPool2d(a["kernel_size"], a["stride"], a["padding"])),
    F.softmax: (_sig("input", dim=None, _stacklevel=3, dtype=None), lambda a: nn.Softmax(a["dim"])),
    F.log_softmax: (_sig("input", dim=None, _stacklevel=3, dtype=None), lambda a: nn.LogSoftmax(a["dim"])),
}


def functional_module(node: Any) -> nn.Module | None:
    """The module form of a functional activation, pooling or softmax call, else None."""
    key = ACTIVATION_FUNCTIONS.get(node.target) if node.op in ("call_function", "call_method") else None
    if key is not None:
        sig, make = _ACT[key]
        args = {"input": node.args[0]} if node.op == "call_method" else _bind(sig, node)
        return make({**{k: p.default for k, p in sig.parameters.items()}, **args})
    if node.op == "call_function" and node.target in _POOLING:
        sig, make = _POOLING[node.target]
        return make(_bind(sig, node))
    if node.op == "call_function" and node.target in (torch.softmax, torch.log_softmax):
        return (nn.Softmax if node.target is torch.softmax else nn.LogSoftmax)(node.args[1] if len(node.args) > 1 else None)
    return None


_WEIGHTED = {
    F.linear: _sig("input", "weight", bias=None),
    F.conv1d: _sig("input", "weight", bias=None, stride=1, padding=0, dilation=1, groups=1),
    F.conv2d: _sig("input", "weight", bias=None, stride=1, padding=0, dilation=1, groups=1),
}


def _attribute(model: nn.Module, node: Any) -> torch.Tensor | None:
    """The parameter or buffer a ``get_attr`` node reads (``self.fc.weight``), else None."""
    if not (isinstance(node, torch.fx.Node) and node.op == "get_attr"):
        return None
    value: Any = model
    for part in str(node.target).split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, torch.Tensor) else None


def weighted_module(node: Any, model: nn.Module) -> nn.Module | None:
    """The module form of ``F.linear``/``F.conv1d``/``F.conv2d`` called with the model's own parameters, else None.

    The module holds copies of the parameters: quantization reads them, and the user's model is not changed.
    """
    sig = _WEIGHTED.get(node.target) if node.op == "call_function" else None
    if sig is None:
        return None
    a = _bind(sig, node)
    w, b = _attribute(model, a["weight"]), _attribute(model, a["bias"])
    if w is None or (a["bias"] is not None and b is None):
        return None
    module: nn.Linear | nn.Conv1d | nn.Conv2d
    if node.target is F.linear:
        module = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    else:
        conv: Any = nn.Conv1d if node.target is F.conv1d else nn.Conv2d
        module = conv(w.shape[1] * a["groups"], w.shape[0], tuple(w.shape[2:]), stride=a["stride"],
                      padding=a["padding"], dilation=a["dilation"], groups=a["groups"], bias=b is not None)
    with torch.no_grad():
        module.weight.copy_(w)
        if b is not None and module.bias is not None:
            module.bias.copy_(b)
    return module


@dataclass(frozen=True)
class _Value:
    name: str


class _Meta:
    """A shape or size: used only to spell a view."""


_META = _Meta()
_FAILED = object()  # a node already reported: its readers add no second problem
_ALIASES = {F.dropout, torch.dropout, "contiguous", "clone", "detach", operator.pos}
_MULS = {operator.mul, operator.imul, torch.mul, "mul"}
_ADDS = {operator.add, operator.iadd, torch.add, "add"}
_SUBS = {operator.sub, operator.isub, torch.sub, "sub"}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class _Walk:
    """State of one walk over an fx graph."""

    model: nn.Module
    env: dict[Any, Any]
    layers: list[GraphLayer]
    problems: list[str]
    used: set[str]
    calls: dict[str, int]

    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def values(self, node: Any, args: Any) -> list[str] | None:
        """Names of the layers behind tensor arguments; None (and a problem) for unusable ones."""
        out = []
        for a in args:
            v = self.env.get(a) if isinstance(a, torch.fx.Node) else None
            if isinstance(v, _Value):
                out.append(v.name)
            elif v is _FAILED:
                self.env[node] = _FAILED
                return None
            elif isinstance(a, torch.fx.Node):
                self.fail(node, f"{node.name}: reads {a.name}, which is not a tensor the integer model computes "
                                     "(a parameter is read functionally only by F.linear, F.conv1d and F.conv2d; "
                                     "use a module)")
                return None
        return out

    def fail(self, node: Any, problem: str) -> None:
        """Record a problem with ``node``; its readers add none of their own."""
        self.problems.append(problem)
        self.env[node] = _FAILED

    def add(self, node: Any, name: str, module: nn.Module, inputs: list[str]) -> None:
        name = self.unique(name if node.op == "call_module" or name != node.name else _name(node))
        self.layers.append(GraphLayer(name, module, tuple(inputs)))
        self.env[node] = _Value(name)


def _name(node: Any) -> str:
    """``block1.add`` for an ``x + y`` inside module ``block1``: the module path, then the function's name."""
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    base = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.name)
    return f"{path}.{base}" if path else str(base)


def _reshape_spec(node: Any, walk: _Walk) -> list[int | None] | None:
    shape = node.args[1:] if node.op == "call_method" else node.args[1:2]
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    spec: list[int | None] = []
    for s in shape:
        if isinstance(s, torch.fx.Node) and walk.env.get(s) is _META:
            spec.append(None)
        elif isinstance(s, int):
            spec.append(s)
        else:
            return None
    return spec


def _arith(node: Any, walk: _Walk) -> bool:
    """x * x, x * c, x / c, x + y, x - y, x + c, -x, x ** 2 ...; False if the node is none of them."""
    t, args = node.target, node.args
    nodes = [a for a in args if isinstance(a, torch.fx.Node)]
    consts = [a for a in args if _number(a)]
    module: nn.Module | None = None
    if (t in _MULS and len(nodes) == 2 and nodes[0] is nodes[1]) or (t in (operator.pow, torch.pow, "pow") and len(args) == 2 and args[1] == 2) or t in (torch.square, "square"):
        module = Square()
    elif t in _MULS and len(nodes) == 1 and len(consts) == 1:
        module = ConstAffine(scale=consts[0])
    elif t in (operator.truediv, operator.itruediv, torch.div, "div") and len(args) == 2 and _number(args[1]) and args[1]:
        module = ConstAffine(scale=1.0 / args[1])
    elif t in (operator.neg, torch.neg, "neg"):
        module = ConstAffine(scale=-1.0)
    elif (t in _ADDS or t in _SUBS) and len(nodes) == 2 and not node.kwargs:
        module = Add((1.0, -1.0) if t in _SUBS else (1.0, 1.0))
    elif (t in _ADDS or t in _SUBS) and len(nodes) == 1 and len(consts) == 1 and not node.kwargs:
        sign = -1.0 if t in _SUBS else 1.0
        module = ConstAffine(1.0, sign * consts[0]) if args[0] is nodes[0] else ConstAffine(sign, consts[0])
    if module is None:
        return False
    inputs = walk.values(node, nodes if isinstance(module, Add) else nodes[:1])
    if inputs is not None:
        walk.add(node, node.name, module, inputs)
    return True


def _shape_call(node: Any, walk: _Walk) -> bool:
    """Flatten, view/reshape, cat, mean or sum over H and W, aliases and metadata; False if none of them."""
    t = node.target
    first = node.args[0] if node.args else None
    if t in ("size", "dim") or (t is getattr and node.args[1] == "shape") or (
            t is operator.getitem and isinstance(first, torch.fx.Node) and walk.env.get(first) is _META):
        walk.env[node] = _META
    elif t in _ALIASES:
        walk.env[node] = walk.env.get(first) if isinstance(first, torch.fx.Node) else None
    elif t in (torch.flatten, "flatten"):
        a = _bind(_sig("input", start_dim=0, end_dim=-1), node)
        if (a["start_dim"], a["end_dim"]) != (1, -1):
            walk.fail(node, f"{node.name}: flatten(start_dim={a['start_dim']}, end_dim={a['end_dim']}) mixes the "
                                 "batch axis or keeps axes; use torch.flatten(x, 1)")
        elif (inputs := walk.values(node, [node.args[0]])) is not None:
            walk.add(node, node.name, nn.Flatten(), inputs)
    elif t in ("view", "reshape", torch.reshape):
        spec = _reshape_spec(node, walk)
        if spec is None:
            walk.fail(node, f"{node.name}: {t} with a computed shape; write x.view(x.size(0), -1)")
        elif (inputs := walk.values(node, [node.args[0]])) is not None:
            walk.add(node, node.name, Reshape(spec), inputs)
    elif t in (torch.cat, torch.concat):
        a = _bind(_sig("tensors", dim=0), node)
        if (inputs := walk.values(node, list(a["tensors"]))) is not None:
            walk.add(node, node.name, Concat(a["dim"]), inputs)
    elif t in (torch.mean, "mean", torch.sum, "sum"):
        mean = t in (torch.mean, "mean")
        a = _bind(_sig("input", dim=None, keepdim=False, dtype=None), node)
        dims = a["dim"] if isinstance(a["dim"], (tuple, list)) else (a["dim"],)
        if sorted(d % 4 if d is not None else -1 for d in dims) != [2, 3]:
            what = "mean x.mean((2, 3)) (global average pooling)" if mean else "sum x.sum((2, 3)) (global sum pooling)"
            walk.fail(node, f"{node.name}: {'mean' if mean else 'sum'} over dims {a['dim']}; only the spatial "
                            f"{what} has an integer form")
        elif (inputs := walk.values(node, [node.args[0]])) is not None:
            walk.add(node, node.name, nn.AdaptiveAvgPool2d(1) if mean else GlobalSumPool2d(), inputs)
            if not a["keepdim"]:
                pooled = walk.env[node].name
                walk.add(node, f"{pooled}.flatten", nn.Flatten(), [pooled])
    else:
        return False
    return True


def _call(node: Any, walk: _Walk) -> None:
    if node.op == "call_module":
        k = walk.calls[node.target] = walk.calls.get(node.target, 0) + 1
        inputs = walk.values(node, node.args)
        if inputs is not None:
            walk.add(node, node.target if k == 1 else f"{node.target}:{k}", walk.model.get_submodule(node.target), inputs)
        return
    if _shape_call(node, walk) or _arith(node, walk):
        return
    module = functional_module(node) or weighted_module(node, walk.model)
    if module is not None:
        if (inputs := walk.values(node, [node.args[0]])) is not None:
            walk.add(node, node.name, module, inputs)
        return
    what = getattr(node.target, "__name__", node.target)
    if node.target in _MULS:
        walk.fail(node, f"{node.name}: the product of two different tensors has no integer form here; "
                        "use x * x (Square) or secquant.nn.Poly")
    else:
        walk.fail(node, f"{node.name}: {node.op.replace('call_', '')} {what!s} has no integer form")


def trace_layers(model: nn.Module) -> tuple[list[GraphLayer], list[str]]:
    """The layers of ``model`` in a topological order (the output last), and the problems found.

    Problems are calls without an integer form, several inputs or outputs;
    the caller adds the layers without a converter and raises them all at once.

    Raises:
        UnsupportedLayerError: fx cannot trace the model at all.
    """
    if not list(model.children()) and (converter_for(model) is not None or type(model).__module__.startswith("torch.nn")):
        return [GraphLayer(type(model).__name__, model, (INPUT,))], []
    gm = trace(model)
    walk = _Walk(model, {}, [], [], {INPUT}, {})
    output: Any = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if any(isinstance(v, _Value) and v.name == INPUT for v in walk.env.values()):
                walk.problems.append(f"{node.name}: the model takes more than one input")
            walk.env[node] = _Value(INPUT)
        elif node.op == "get_attr":
            walk.env[node] = None
        elif node.op == "output":
            output = walk.env.get(node.args[0]) if isinstance(node.args[0], torch.fx.Node) else None
            if not isinstance(output, _Value) and output is not _FAILED:
                walk.problems.append("output: the model must return one tensor")
        else:
            _call(node, walk)
    if walk.problems or not isinstance(output, _Value):
        return walk.layers, walk.problems
    return _reachable(walk.layers, output.name)


def _reachable(layers: list[GraphLayer], output: str) -> tuple[list[GraphLayer], list[str]]:
    """Layers the output depends on, in order."""
    needed = {output}
    for layer in reversed(layers):
        if layer.name in needed:
            needed.update(layer.inputs)
    kept = [layer for layer in layers if layer.name in needed]
    if not kept or kept[-1].name != output:
        return kept, [f"output: the model returns {output!r} unchanged; it computes nothing"]
    return kept, []
