"""The built-in converters: Linear, Conv2d, AvgPool2d, Flatten, Square, Poly, and no-ops.

How scales move: a layer's input integers ``u`` stand for ``(u - z) / s``.
A weighted layer folds ``1/s`` into its real weights (``A = W / s``), quantizes
``A`` per output channel with scale ``c`` and so outputs integers at scale
``c``; the zero point ``z`` moves into its integer bias.  Pooling multiplies the
scale by the window size, Square squares it, Poly raises it to its degree.
Nothing divides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.nn.layers import Poly, Square
from secquant.quant import exact
from secquant.quant.calibration import qmax, quantize_weight
from secquant.quant.config import QuantConfig
from secquant.quant.intops import (
    IntAddConst,
    IntConv2d,
    IntFlatten,
    IntLinear,
    IntOp,
    IntPoly,
    IntSquare,
    IntSumPool2d,
    max_abs,
)
from secquant.quant.registry import ConvState, register_converter

__all__: list[str] = []

Result = tuple[list[IntOp], ConvState]


def _round_to_ints(values: NDArray[np.float64]) -> NDArray[Any]:
    """Round real values to exact integers (Python ints when past int64)."""
    r = np.floor(np.asarray(values, dtype=np.float64) + 0.5)
    if r.size and np.max(np.abs(r)) >= 2**62:
        return np.vectorize(int, otypes=[object])(r)
    return r.astype(np.int64)


def _zero_state(shape: tuple[int, ...], scale: NDArray[np.float64]) -> ConvState:
    return ConvState(shape=shape, scale=scale, offset=np.zeros((), np.int64))


def _params(module: nn.Module) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w = module.weight.detach().double().numpy()
    b = module.bias.detach().double().numpy() if module.bias is not None else np.zeros(w.shape[0])
    return w, b


@register_converter(nn.Linear)
def _linear(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    if len(state.shape) != 1:
        raise ConfigError(f"{name}: Linear expects flat input, got shape {state.shape}; add nn.Flatten()")
    w, b = _params(module)
    a = w / state.full_scale()[None, :]
    wq, c = quantize_weight(a, cfg.bits_for(name), cfg.weight_granularity, cfg.weight_method)
    bias = _round_to_ints(b * c)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())
        bias = exact.to_python_ints(bias) - exact.matmul(z[None], wq, max_abs(z) * max_abs(wq) * wq.shape[1] + 1)[0]
    op = IntLinear(name=name, weight=wq, bias=exact.as_exact(bias, max_abs(bias) + 1))
    return [op], _zero_state((w.shape[0],), c)


def _channel_scale(state: ConvState, name: str) -> NDArray[np.float64]:
    """Per-channel scale (C,) of a (C, H, W) activation; refuses scales that vary inside a channel."""
    if len(state.shape) != 3:
        raise ConfigError(f"{name}: expects (C, H, W) input, got shape {state.shape}")
    full = state.full_scale()
    per_channel = full[:, 0, 0]
    if not np.allclose(full, per_channel[:, None, None], rtol=0, atol=0):
        raise ConfigError(f"{name}: the scale varies inside a channel; such inputs cannot be convolved")
    return per_channel


@register_converter(nn.Conv2d)
def _conv2d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    problems = []
    if module.groups != 1:
        problems.append("groups != 1")
    if tuple(module.dilation) != (1, 1):
        problems.append("dilation != 1")
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        problems.append("padding must be numeric zero padding")
    if problems:
        raise ConfigError(f"{name}: unsupported Conv2d options: {', '.join(problems)}")
    s = _channel_scale(state, name)
    w, b = _params(module)
    a = w / s[None, :, None, None]
    wq, c = quantize_weight(a, cfg.bits_for(name), cfg.weight_granularity, cfg.weight_method)
    bias = _round_to_ints(b * c).reshape(-1, 1, 1)
    op = IntConv2d(name=name, weight=wq, bias=bias, stride=tuple(module.stride), padding=tuple(module.padding))
    out_shape = op.output_shape(state.shape)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())[None]
        bound = max_abs(z) * max_abs(wq) * int(np.prod(wq.shape[1:])) + 1
        bias = exact.to_python_ints(bias) - op._apply(z, wq, bound)[0]
        op = IntConv2d(name=name, weight=wq, bias=exact.as_exact(bias, max_abs(bias) + 1), stride=op.stride, padding=op.padding)
    return [op], _zero_state(out_shape, c.reshape(-1, 1, 1))


@register_converter(nn.AvgPool2d)
def _avgpool2d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    kernel = module.kernel_size
    padding = module.padding
    if module.ceil_mode:
        raise ConfigError(f"{name}: AvgPool2d(ceil_mode=True) averages over uneven windows; use ceil_mode=False")
    if not module.count_include_pad and np.any(np.asarray(padding) != 0):
        raise ConfigError(f"{name}: count_include_pad=False with padding divides unevenly; use count_include_pad=True")
    op = IntSumPool2d(name=name, kernel=kernel, stride=module.stride or kernel, padding=padding)
    divisor = module.divisor_override or op.kernel[0] * op.kernel[1]
    s = _channel_scale(state, name)
    offset: NDArray[Any] = np.zeros((), np.int64)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())[None]
        offset = op.forward(z, max_abs(z) * divisor + 1)[0]
    out = ConvState(shape=op.output_shape(state.shape), scale=(s * divisor).reshape(-1, 1, 1), offset=offset)
    return [op], out


@register_converter(nn.Flatten)
def _flatten(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    if module.start_dim != 1 or module.end_dim != -1:
        raise ConfigError(f"{name}: only Flatten(start_dim=1, end_dim=-1) is supported")
    n = int(np.prod(state.shape))
    out = ConvState(shape=(n,), scale=state.full_scale().reshape(-1), offset=state.full_offset().reshape(-1))
    return [IntFlatten(name=name)], out


def _remove_offset(name: str, state: ConvState) -> list[IntOp]:
    if not state.has_offset:
        return []
    return [IntAddConst(name=f"{name}.zero_point", constant=-exact.to_python_ints(state.full_offset()))]


@register_converter(Square)
def _square(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    ops = _remove_offset(name, state)
    scale = np.asarray(state.scale, dtype=np.float64)
    return [*ops, IntSquare(name=name)], _zero_state(state.shape, scale * scale)


@register_converter(Poly)
def _poly(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    ops = _remove_offset(name, state)
    a = module.coeffs.detach().double().numpy()
    degree = a.shape[0] - 1
    s = np.asarray(state.scale, dtype=np.float64)
    ca = qmax(cfg.bits_for(name)) / float(np.max(np.abs(a)))
    terms = [_round_to_ints(ca * a[i] * s ** (degree - i)) for i in range(degree + 1)]
    shape = np.broadcast_shapes(*(np.shape(t) for t in terms))
    coeffs = np.stack([np.broadcast_to(exact.to_python_ints(t), shape) for t in terms])
    coeffs = exact.as_exact(coeffs, max_abs(coeffs) + 1)
    return [*ops, IntPoly(name=name, coeffs=coeffs)], _zero_state(state.shape, ca * s**degree)


@register_converter(nn.Identity, nn.Dropout)
def _noop(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    return [], state
