"""The built-in converters: Linear, Flatten, Square, Poly and no-ops (convolutions and pooling in
:mod:`~secquant.quant.converters_conv`, graph steps and BatchNorm in :mod:`~secquant.quant.converters_graph`).

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
    IntFlatten,
    IntLinear,
    IntOp,
    IntPoly,
    IntSquare,
    max_abs,
)
from secquant.quant.registry import ConvState, register_converter

__all__ = ["LEADING_COEFFICIENT_RATIO", "poly_coefficient_scale", "round_to_ints", "zero_state"]

Result = tuple[list[IntOp], ConvState]


def round_to_ints(values: NDArray[np.float64]) -> NDArray[Any]:
    """Round real values to exact integers (Python ints when past int64)."""
    r = np.floor(np.asarray(values, dtype=np.float64) + 0.5)
    if r.size and np.max(np.abs(r)) >= 2**62:
        return np.vectorize(int, otypes=[object])(r)
    return r.astype(np.int64)


def zero_state(shape: tuple[int, ...], scale: NDArray[np.float64]) -> ConvState:
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
    bias = round_to_ints(b * c)
    if state.has_offset:
        z = exact.to_python_ints(state.full_offset())
        bias = exact.to_python_ints(bias) - exact.matmul(z[None], wq, max_abs(z) * max_abs(wq) * wq.shape[1] + 1)[0]
    op = IntLinear(name=name, weight=wq, bias=exact.as_exact(bias, max_abs(bias) + 1))
    return [op], zero_state((w.shape[0],), c)


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
    return [*ops, IntSquare(name=name)], zero_state(state.shape, scale * scale)


#: The leading coefficient of a Poly may be this many times smaller than the largest one
#: before it is quantized on its own (see :func:`poly_coefficient_scale`).
LEADING_COEFFICIENT_RATIO = 4.0


def poly_coefficient_scale(a: NDArray[np.float64], bits: int) -> float:
    """The factor ``ca`` of a Poly's integer coefficients ``round(ca · a_i · s**(degree-i))``.

    ``qmax(bits) / max|a_i|``: the largest coefficient gets ``bits`` bits.  But the
    leading one then has only ``qmax · |a_d| / max|a_i|`` levels, and a fitted
    activation over a wide range (ReLU over [-20, 40]: a_2 / a_0 ~ 1/300) would
    round it to zero.  So when ``|a_d|`` is more than :data:`LEADING_COEFFICIENT_RATIO`
    times smaller than the largest, ``ca = qmax(bits) / |a_d|``: the leading
    coefficient gets ``bits`` bits and the others more (their terms carry
    ``s**(degree-i)``).  Well-conditioned polynomials keep the first rule.
    """
    top = float(np.max(np.abs(a)))
    lead = abs(float(a[-1]))
    if 0 < lead < top / LEADING_COEFFICIENT_RATIO:
        return qmax(bits) / lead
    return qmax(bits) / top


@register_converter(Poly)
def _poly(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    ops = _remove_offset(name, state)
    a = module.coeffs.detach().double().numpy()
    degree = a.shape[0] - 1
    s = np.asarray(state.scale, dtype=np.float64)
    ca = poly_coefficient_scale(a, cfg.bits_for(name))
    terms = [round_to_ints(ca * a[i] * s ** (degree - i)) for i in range(degree + 1)]
    shape = np.broadcast_shapes(*(np.shape(t) for t in terms))
    coeffs = np.stack([np.broadcast_to(exact.to_python_ints(t), shape) for t in terms])
    coeffs = exact.as_exact(coeffs, max_abs(coeffs) + 1)
    return [*ops, IntPoly(name=name, coeffs=coeffs)], zero_state(state.shape, ca * s**degree)


@register_converter(nn.Identity, nn.Dropout)
def _noop(module: nn.Module, name: str, state: ConvState, cfg: QuantConfig) -> Result:
    return [], state


# The other built-in converters register themselves on import.
import secquant.quant.converters_conv  # noqa: E402  (registration needs the names above)
import secquant.quant.converters_graph  # noqa: E402, F401
