"""Converters for convolutions and pooling: Conv2d, Conv1d, AvgPool2d, AdaptiveAvgPool2d, global sums.

A convolution folds its input's per-channel scale into its real weights (the
scale must be constant inside each channel), quantizes them per output
channel, and moves the zero point into its bias.  A dilated or grouped
convolution becomes the plain convolution with the same outputs: its kernel
spread out with zeros between the taps, or zero outside each group's block
(exact; the integer op then multiplies those zeros too).  ``padding="same"``
and ``"valid"`` become the numbers they stand for.  Pooling sums windows and
multiplies the scale by the divisor; nothing divides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.calibration import quantize_weight
from secquant.quant.config import QuantConfig
from secquant.quant.converters import round_to_ints, zero_state
from secquant.quant.graph import GlobalSumPool2d
from secquant.quant.intops import (
    IntConv1d,
    IntConv2d,
    IntOp,
    IntScale,
    IntSumPool2d,
    max_abs,
)
from secquant.quant.registry import ConvState, register_converter

__all__ = ["channel_scale"]

Result = tuple[list[IntOp], ConvState]


def channel_scale(state: ConvState, name: str, ndim: int = 3) -> NDArray[np.float64]:
    """Per-channel scale (C,) of a (C, H, W) (``ndim=3``) or (C, L) (``ndim=2``) activation.

    Raises:
        ConfigError: another shape, or a scale that varies inside a channel.
    """
    if len(state.shape) != ndim:
        raise ConfigError(f"{name}: expects {'(C, H, W)' if ndim == 3 else '(C, L)'} input, got shape {state.shape}")
    full = state.full_scale()
    per_channel = full.reshape(full.shape[0], -1)[:, 0]
    if not np.allclose(full, per_channel.reshape(-1, *([1] * (ndim - 1))), rtol=0, atol=0):
        raise ConfigError(f"{name}: the scale varies inside a channel; such inputs cannot be convolved")
    return per_channel


def _padding(module: nn.Module, name: str) -> tuple[int, ...]:
    """Numeric zero padding per spatial axis (``"valid"`` is 0; ``"same"`` is half the dilated kernel).

    Raises:
        ConfigError: a padding mode other than zeros, or ``"same"`` with an even dilated kernel
            (PyTorch pads one side more; the integer op pads both alike).
    """
    if module.padding_mode != "zeros":
        raise ConfigError(f"{name}: padding_mode={module.padding_mode!r}; only zero padding has an integer form")
    if not isinstance(module.padding, str):
        return tuple(int(p) for p in module.padding)
    spans = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True)]
    if module.padding == "valid":
        return (0,) * len(spans)
    if any(span % 2 for span in spans):
        raise ConfigError(f"{name}: padding='same' with kernel {tuple(module.kernel_size)} and dilation "
                          f"{tuple(module.dilation)} pads one side more; use numeric padding (an odd kernel)")
    return tuple(span // 2 for span in spans)


def _plain_kernel(module: nn.Module) -> NDArray[np.float64]:
    """The kernel of the undilated, ungrouped convolution with ``module``'s outputs, shape (O, I, *k')."""
    w = module.weight.detach().double().numpy()
    dilation = tuple(int(d) for d in module.dilation)
    if any(d != 1 for d in dilation):
        spread = np.zeros((*w.shape[:2], *(d * (k - 1) + 1 for d, k in zip(dilation, w.shape[2:], strict=True))))
        spread[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
        w = spread
    groups = int(module.groups)
    if groups != 1:
        per_in, per_out = w.shape[1], w.shape[0] // groups
        full = np.zeros((w.shape[0], per_in * groups, *w.shape[2:]))
        for g in range(groups):
            full[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = w[g * per_out:(g + 1) * per_out]
        w = full
    return w


def _weighted_conv(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig, ndim: int) -> Result:
    padding = _padding(module, name)
    s = channel_scale(state, name, ndim)
    w = _plain_kernel(module)
    b = module.bias.detach().double().numpy() if module.bias is not None else np.zeros(w.shape[0])
    a = w / s.reshape(1, -1, *([1] * (ndim - 1)))
    wq, c = quantize_weight(a, cfg.bits_for(name), cfg.weight_granularity, cfg.weight_method)
    channel = (-1, *([1] * (ndim - 1)))
    bias = round_to_ints(b * c).reshape(channel)
    make = (lambda bias_: IntConv2d(name=name, weight=wq, bias=bias_, stride=tuple(module.stride), padding=padding)) \
        if ndim == 3 else (lambda bias_: IntConv1d(name=name, weight=wq, bias=bias_, stride=module.stride, padding=padding))
    op = make(bias)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())[None]
        bound = max_abs(z) * max_abs(wq) * int(np.prod(wq.shape[1:])) + 1
        bias = exact.to_python_ints(bias) - op._apply(z, wq, bound)[0]
        op = make(exact.as_exact(bias, max_abs(bias) + 1))
    return [op], zero_state(op.output_shape(state.shape), c.reshape(channel))


@register_converter(nn.Conv2d)
def _conv2d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    return _weighted_conv(module, name, state, cfg, 3)


@register_converter(nn.Conv1d)
def _conv1d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    return _weighted_conv(module, name, state, cfg, 2)


def _sum_pool(name: str, state: ConvState, op: IntSumPool2d, divisor: int) -> Result:
    s = channel_scale(state, name)
    offset: NDArray[Any] = np.zeros((), np.int64)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())[None]
        offset = op.forward(z, max_abs(z) * op.kernel[0] * op.kernel[1] + 1)[0]
    return [op], ConvState(shape=op.output_shape(state.shape), scale=(s * divisor).reshape(-1, 1, 1), offset=offset)


def _window_counts(op: IntSumPool2d, h: int, w: int) -> NDArray[np.int64]:
    """How many real (unpadded) pixels each window covers, shape (Ho, Wo)."""
    ones = np.ones((1, 1, h, w), dtype=np.int64)
    return np.asarray(op.forward(ones, op.kernel[0] * op.kernel[1] + 1))[0, 0].astype(np.int64)


@register_converter(nn.AvgPool2d)
def _avgpool2d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    if module.ceil_mode:
        raise ConfigError(f"{name}: AvgPool2d(ceil_mode=True) averages over uneven windows; use ceil_mode=False")
    op = IntSumPool2d(name=name, kernel=module.kernel_size, stride=module.stride or module.kernel_size, padding=module.padding)
    if module.divisor_override or module.count_include_pad or op.padding == (0, 0):
        return _sum_pool(name, state, op, module.divisor_override or op.kernel[0] * op.kernel[1])
    # count_include_pad=False: windows at the border cover fewer pixels; multiply each
    # window sum by L / count (L = lcm of the counts) so every output has scale s·L.
    ops, pooled = _sum_pool(name, state, op, 1)
    counts = _window_counts(op, state.shape[1], state.shape[2])
    lcm = math.lcm(*(int(c) for c in np.unique(counts)))
    mult = (lcm // counts)[None].astype(np.int64)
    even = IntScale(name=f"{name}.even", multiplier=mult, bias=np.zeros((1, 1, 1), np.int64))
    offset = exact.to_python_ints(pooled.offset) * exact.to_python_ints(mult) if pooled.has_offset else pooled.offset
    return [*ops, even], ConvState(shape=pooled.shape, scale=np.asarray(pooled.scale) * lcm, offset=offset)


@register_converter(nn.AdaptiveAvgPool2d)
def _adaptive_avgpool2d(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    channel_scale(state, name)
    _, h, w = state.shape
    size = module.output_size
    oh, ow = (size, size) if isinstance(size, int) else (size[0] or h, size[1] or w)
    if h % oh or w % ow:
        raise ConfigError(
            f"{name}: AdaptiveAvgPool2d({size}) on a {h}x{w} input averages windows of different sizes; "
            "use output sizes that divide the input (1 for global average pooling)"
        )
    kernel = (h // oh, w // ow)
    return _sum_pool(name, state, IntSumPool2d(name=name, kernel=kernel, stride=kernel, padding=(0, 0)), kernel[0] * kernel[1])


@register_converter(GlobalSumPool2d)
def _global_sum(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    channel_scale(state, name)
    _, h, w = state.shape
    return _sum_pool(name, state, IntSumPool2d(name=name, kernel=(h, w), stride=(h, w), padding=(0, 0)), 1)
