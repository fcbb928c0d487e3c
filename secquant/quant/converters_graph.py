"""Converters for graph steps: residual add, concatenation, views, constant affine maps, BatchNorm.

Adding integers at two scales: input k carries ``u_k = e_k · x_k`` (its scale
divided by the add's real weight).  With ``e_max`` and ``e_min`` the largest and
smallest of them per element, the output scale is ``S = e_max · m`` with
``m = max(1, ceil(qmax · e_min / e_max))``, and input k is multiplied by the
integer ``a_k = round(S / e_k)``: the finest input is multiplied exactly by m,
every other by at least ``qmax`` (so its relative error is at most
``1 / (2·qmax)``, the precision of a ``bits``-bit weight).  Exact integers, no
division.

BatchNorm that cannot be folded, and ``x * c``, ``x + c``, ``-x``, become
``y = g·x + beta``: the factor ``|g|`` moves into the scale, the sign and
``round(beta · scale)`` into an integer scale op (no op at all when the sign is
+1 and there is nothing to add).

Concatenation moves no value, but its inputs may carry very different scales
(``conv(x)**2`` next to ``conv(x)``); a later Linear folding ``1/scale`` into its
weights would round the finely scaled features' weights to zero.  So each
channel is multiplied by the integer ``round(max scale / its scale)``: the
scales end within a factor 2 of each other, exactly (the new scale is recorded,
nothing is rounded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.calibration import qmax
from secquant.quant.config import QuantConfig
from secquant.quant.converters import round_to_ints, zero_state
from secquant.quant.graph import Add, Concat, ConstAffine, Reshape
from secquant.quant.intops import (
    IntAdd,
    IntConcat,
    IntFlatten,
    IntOp,
    IntScale,
    max_abs,
)
from secquant.quant.registry import ConvState, register_converter

__all__ = ["MergeConverter", "elementwise_affine", "merge_converter_for"]

Result = tuple[list[IntOp], ConvState]
MergeConverter = Callable[[nn.Module, str, Sequence[ConvState], QuantConfig], Result]


def elementwise_affine(name: str, state: ConvState, g: NDArray[np.float64], beta: NDArray[np.float64]) -> Result:
    """Ops and state for ``y = g·x + beta`` (g, beta broadcast over one example)."""
    g, beta = np.asarray(g, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(beta))):
        raise ConfigError(f"{name}: the affine factors are not finite")
    sign = np.sign(g).astype(np.int64)
    absg = np.abs(g)
    s = np.asarray(state.scale, dtype=np.float64)
    scale = np.where(absg > 0, s / np.where(absg > 0, absg, 1.0), s + 0 * absg)
    bias = exact.to_python_ints(round_to_ints(beta * scale))
    if np.all(sign == 1) and np.all(bias == 0):
        return [], ConvState(shape=state.shape, scale=scale, offset=state.offset)
    if state.has_offset:
        bias = bias - sign * exact.to_python_ints(state.full_offset())
    bias = exact.as_exact(bias, max_abs(bias) + 1)
    return [IntScale(name=name, multiplier=sign, bias=bias)], zero_state(state.shape, scale)


@register_converter(ConstAffine)
def _const_affine(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    return elementwise_affine(name, state, np.asarray(module.scale), np.asarray(module.shift))


@register_converter(nn.BatchNorm1d, nn.BatchNorm2d)
def _batchnorm(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    want = 3 if isinstance(module, nn.BatchNorm2d) else (1, 2)
    if len(state.shape) not in np.atleast_1d(want) or state.shape[0] != module.num_features:
        raise ConfigError(f"{name}: {type(module).__name__}({module.num_features}) does not fit input shape {state.shape}")
    if module.running_mean is None or module.running_var is None:
        raise ConfigError(f"{name}: BatchNorm without running statistics (track_running_stats=False) "
                          "normalizes by each batch and has no fixed integer form")
    std = np.sqrt(module.running_var.detach().double().numpy() + module.eps)
    gamma = module.weight.detach().double().numpy() if module.weight is not None else np.ones_like(std)
    beta = module.bias.detach().double().numpy() if module.bias is not None else np.zeros_like(std)
    g = gamma / std
    shift = beta - module.running_mean.detach().double().numpy() * g
    channel = (-1, *([1] * (len(state.shape) - 1)))
    return elementwise_affine(name, state, g.reshape(channel), shift.reshape(channel))


@register_converter(Reshape)
def _reshape(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    spec, n = module.spec, int(np.prod(state.shape))
    if list(spec[1:]) == list(state.shape) and spec[0] in (None, -1):
        return [], state
    flat = len(spec) == 2 and ((spec[0] is None and spec[1] in (-1, n)) or (spec[0] == -1 and spec[1] == n))
    if not flat:
        raise ConfigError(f"{name}: view/reshape to {spec} from {state.shape}; only flattening (x.view(x.size(0), -1)) "
                          "has an integer form")
    out = ConvState(shape=(n,), scale=state.full_scale().reshape(-1), offset=state.full_offset().reshape(-1))
    return [IntFlatten(name=name)], out


def _add(module: nn.Module, name: str, states: Sequence[ConvState], cfg: QuantConfig) -> Result:
    shapes = {s.shape for s in states}
    if len(shapes) != 1:
        raise ConfigError(f"{name}: adds tensors of shapes {sorted(shapes)}; broadcasting adds have no integer form")
    shape = states[0].shape
    common = np.broadcast_shapes(*(np.shape(s.scale) for s in states))
    weights = [float(w) for w in module.weights]
    eff = [np.broadcast_to(np.asarray(s.scale, np.float64) / abs(w) if w else np.inf, common) for s, w in zip(states, weights)]
    live = [e for e, w in zip(eff, weights) if w]
    if not live:
        raise ConfigError(f"{name}: every weight of the add is zero")
    e_max, e_min = np.max(live, axis=0), np.min(live, axis=0)
    top = qmax(cfg.bits_for(name))
    m = np.maximum(1.0, np.ceil(top * e_min / e_max))
    out_scale = e_max * m
    mult = [round_to_ints(np.where(np.isfinite(e), out_scale / np.where(np.isfinite(e), e, 1.0), 0.0)) * int(math.copysign(1, w))
            for e, w in zip(eff, weights)]
    stacked = np.stack([exact.to_python_ints(a) for a in mult])
    offset: Any = np.zeros((), np.int64)
    if any(s.has_offset for s in states):
        offset = sum(a * exact.to_python_ints(s.full_offset()) for a, s in zip(stacked, states))
    op = IntAdd(name=name, weights=exact.as_exact(stacked, max_abs(stacked) + 1))
    return [op], ConvState(shape=shape, scale=out_scale, offset=offset)


def _concat(module: nn.Module, name: str, states: Sequence[ConvState], cfg: QuantConfig) -> Result:
    rank = len(states[0].shape)
    axis = module.dim - 1 if module.dim > 0 else module.dim + rank
    if axis != 0 or any(len(s.shape) != rank or s.shape[1:] != states[0].shape[1:] for s in states):
        raise ConfigError(f"{name}: torch.cat(dim={module.dim}) of shapes {[s.shape for s in states]}; only "
                          "concatenation along channels (or features), dim=1, has an integer form here")
    scale = np.concatenate([s.full_scale() for s in states], axis=0)
    if rank > 1 and np.all(scale == scale.reshape(scale.shape[0], -1)[:, :1].reshape(-1, *([1] * (rank - 1)))):
        scale = scale.reshape(scale.shape[0], -1)[:, :1].reshape(-1, *([1] * (rank - 1)))
    offset: Any = np.zeros((), np.int64)
    if any(s.has_offset for s in states):
        offset = np.concatenate([exact.to_python_ints(s.full_offset()) for s in states], axis=0)
    shape = (sum(s.shape[0] for s in states), *states[0].shape[1:])
    ops: list[IntOp] = [IntConcat(name=name, inputs=len(states), axis=0)]
    # Align: multiply each channel by the integer round(max scale / its scale), so that the scales
    # of the result lie within a factor 2 and a later layer's weights keep their precision.
    align = round_to_ints(np.maximum(1.0, np.max(scale) / scale))
    if np.any(align != 1):
        ops.append(IntScale(name=f"{name}.align", multiplier=align, bias=np.zeros(np.shape(align), np.int64)))
        scale = scale * np.asarray(align, dtype=np.float64)
        if not np.all(np.asarray(offset) == 0):
            offset = exact.to_python_ints(offset) * exact.to_python_ints(align)
    return ops, ConvState(shape=shape, scale=scale, offset=offset)


_MERGES: dict[type[nn.Module], MergeConverter] = {Add: _add, Concat: _concat}


def merge_converter_for(module: nn.Module) -> MergeConverter | None:
    """The converter of a step that reads several tensors (residual add, concatenation), else None."""
    return _MERGES.get(type(module))
