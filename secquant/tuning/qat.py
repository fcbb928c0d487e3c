"""Quantization-aware training whose forward pass *is* the integer model.

:class:`FakeQuantModel` wraps a float model that :func:`secquant.quantize_model`
accepts.  On every forward pass it asks the registered converters for the
integer ops the current weights become (the same code ``quantize_model`` runs,
so the same rounding ``floor(x + 1/2)``, the same per-channel scales and the
same clipping) and evaluates them on the quantized input twice: exactly, in
int64 torch tensors (through float64 BLAS where every partial sum is below
2**53, as :mod:`secquant.quant.exact` does), and as a float64 surrogate that
carries the gradient.  The logits take their value from the exact integers, so
they equal ``qm.predict`` bit for bit; a layer whose integers could pass 2**63
(2**53 for Conv2d and AvgPool2d) raises instead of rounding.

Gradients use the straight-through estimator: each integer weight, bias and
polynomial coefficient carries the gradient of its unrounded value
(``c·W/s``, ``c·b``, ``ca·a_i·s^(d-i)``, scales held constant), zero where
clipping saturated it.  Activations are never rounded in the integer model,
so they need no estimator.

Layout: the fake-quant forward carries ``v = u - z`` (integers with the zero
point removed), which the integer model computes too, only with ``z`` folded
into the first bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.nn.layers import Poly
from secquant.quant.calibration import qmax
from secquant.quant.config import QuantConfig
from secquant.quant.convert import _calibration_array, _input_quant, prepare_chain, quantize_model
from secquant.quant.graph import ChainLayer
from secquant.quant.intops import (
    IntAddConst,
    IntConv2d,
    IntFlatten,
    IntLinear,
    IntOp,
    IntPoly,
    IntSquare,
    IntSumPool2d,
)
from secquant.quant.model import InputQuant, QuantizedModel
from secquant.quant.primitives import Rounding
from secquant.quant.registry import ConvState, converter_for

__all__ = ["FLOAT64_EXACT", "FakeQuantModel", "INT64_EXACT"]

#: Integers (and partial sums) below this are exact in float64.
FLOAT64_EXACT = 2**53
#: Integers (and partial sums) below this are exact in int64.
INT64_EXACT = 2**63


class _Exact(torch.autograd.Function):
    """Forward: the exact integers.  Backward: the surrogate's gradient, masked where clipped."""

    @staticmethod
    def forward(ctx: Any, surrogate: torch.Tensor, exact: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return exact.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def _ste(surrogate: torch.Tensor, exact: NDArray[Any], limit: float | None = None) -> torch.Tensor:
    values = np.asarray(exact)
    if values.dtype == object:
        _need_int64_exact(_max(values), "a parameter")
    exact_t = torch.from_numpy(values.astype(np.float64)).reshape(surrogate.shape)
    if not surrogate.requires_grad:
        return exact_t
    mask = torch.ones_like(surrogate) if limit is None else (surrogate.detach().abs() <= limit + 0.5).double()
    return _Exact.apply(surrogate, exact_t, mask)


def _t(a: NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float64)))


_Pair = tuple[torch.Tensor, torch.Tensor]


def _max(a: Any) -> int:
    """Largest |value| of an integer array or tensor, as a Python int."""
    if isinstance(a, torch.Tensor):
        return int(a.abs().max()) if a.numel() else 0
    arr = np.asarray(a)
    return int(np.max(np.abs(arr.astype(object)))) if arr.size else 0


def _max_row_sum(w: NDArray[Any]) -> int:
    arr = np.abs(np.asarray(w, dtype=np.int64))
    return int(arr.reshape(arr.shape[0], -1).sum(axis=1).max()) if arr.size else 0


def _need_int64_exact(bound: int, name: str) -> None:
    if bound >= INT64_EXACT:
        raise ConfigError(
            f"{name}: integers may reach {bound:.3g} >= 2**63, which torch cannot hold exactly; "
            "use fewer bits (or fewer polynomial layers) for QAT, or post-training quantization"
        )


def _need_float_exact(bound: int, name: str) -> None:
    if bound >= FLOAT64_EXACT:
        raise ConfigError(
            f"{name}: partial sums may reach {bound:.3g} >= 2**53, where float64 convolution and pooling "
            "stop being exact; use fewer bits for QAT"
        )


def _linear_exact(x: torch.Tensor, op: IntLinear, bound: int) -> torch.Tensor:
    """Exact ``x @ W.T + b`` on int64 tensors: BLAS in float64 below 2**53, int64 below 2**63."""
    w = np.asarray(op.weight, dtype=np.int64)
    b = np.asarray(op.bias, dtype=np.int64)
    if bound < FLOAT64_EXACT:
        return (x.double() @ _t(w).T + _t(b)).long()
    _need_int64_exact(bound, op.name)
    return x @ torch.from_numpy(w).T + torch.from_numpy(b)


def _poly(v: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``sum_i coeffs[i] * v**i``, term by term as ``IntPoly.forward``."""
    total = torch.zeros_like(v) + coeffs[0]
    power = torch.ones_like(v)
    for i in range(1, coeffs.shape[0]):
        power = power * v
        total = total + coeffs[i] * power
    return total



class FakeQuantModel(nn.Module):
    """A float model trained through the exact integer semantics of ``quantize_model``.

    The wrapped model's own parameters are trained (no copy); :meth:`convert`
    then returns ``quantize_model(model, calibration, config=config)``, whose
    ``predict`` equals this module's eval-mode output exactly.

    Args:
        model: Float model of supported layers (Linear, Conv2d, AvgPool2d,
            Flatten, Square, Poly, Identity; Dropout is ignored as in the
            integer model).  BatchNorm must be folded first.
        calibration: Inputs of shape (n, *input_shape) that fix the input
            quantization, as in ``quantize_model``.
        config: Quantization choices (bits, per-layer bits, clipping methods,
            input range); input rounding must be NEAREST or FLOOR.

    Raises:
        ConfigError: stochastic input rounding, BatchNorm layers, or bad
            calibration data.
        UnsupportedLayerError: a layer has no integer form.
    """

    def __init__(self, model: nn.Module, calibration: ArrayLike, config: QuantConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else QuantConfig(bits=4)
        if not isinstance(self.config, QuantConfig):
            raise ConfigError(f"config must be a QuantConfig, got {type(self.config).__name__}")
        if self.config.input_rounding is Rounding.STOCHASTIC:
            raise ConfigError("QAT needs deterministic input rounding (NEAREST or FLOOR) to match the integer model")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ConfigError("fold BatchNorm into the previous layer before QAT (the fold is not trained through)")
        self.model = model
        self.calibration = _calibration_array(calibration)
        self.chain: list[ChainLayer] = prepare_chain(model)
        self.input_quant: InputQuant = _input_quant(self.calibration, self.config)

    # -- input ---------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor | ArrayLike) -> torch.Tensor:
        """Input integers with the zero point removed, ``v = clip(round(C·x + d)) - d``, float64."""
        xs = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        iq = self.input_quant
        xs = xs.double().reshape(-1, *iq.shape)
        y = xs * iq.scale + iq.offset
        u = torch.floor(y + 0.5) if iq.rounding is Rounding.NEAREST else torch.floor(y)
        return torch.clamp(u, iq.lo, iq.hi) - iq.offset

    # -- ops -----------------------------------------------------------------
    def _weighted(self, op: IntLinear | IntConv2d, module: nn.Module, s_in: NDArray[np.float64],
                  c: NDArray[np.float64], name: str) -> tuple[torch.Tensor, torch.Tensor]:
        w = module.weight.double()
        if isinstance(op, IntLinear):
            a = w / _t(s_in)[None, :]
            sur_w = a * _t(c)[:, None]
        else:
            a = w / _t(s_in[:, 0, 0])[None, :, None, None]
            sur_w = a * _t(c.reshape(-1))[:, None, None, None]
        b = module.bias.double() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        sur_b = (b * _t(c.reshape(-1))).reshape(np.shape(op.bias))
        return _ste(sur_w, op.weight, qmax(self.config.bits_for(name))), _ste(sur_b, op.bias)

    def _poly_coeffs(self, op: IntPoly, module: Poly, s_in: NDArray[np.float64], name: str) -> torch.Tensor:
        a = module.coeffs.double()
        d = a.shape[0] - 1
        ca = qmax(self.config.bits_for(name)) / float(a.detach().abs().max())
        shape = np.shape(op.coeffs)
        powers = _t(np.stack([np.broadcast_to(np.asarray(s_in, np.float64) ** (d - i), shape[1:]) for i in range(d + 1)]))
        sur = ca * a.reshape(-1, *([1] * (len(shape) - 1))) * powers
        return _ste(sur, op.coeffs)

    def _apply(self, op: IntOp, layer: ChainLayer, v: _Pair, before: ConvState, after: ConvState) -> _Pair:
        exact, grad = v
        if isinstance(op, (IntLinear, IntConv2d)):
            w, b = self._weighted(op, layer.module, before.full_scale(), np.asarray(after.scale), layer.name)
            bound = _max(exact) * _max_row_sum(op.weight) + _max(op.bias)
            if isinstance(op, IntLinear):
                return _linear_exact(exact, op, bound), grad @ w.T + b
            _need_float_exact(bound, op.name)
            out = F.conv2d(exact.double(), _t(op.weight), stride=op.stride, padding=op.padding) + _t(op.bias)
            return out.long(), F.conv2d(grad, w, stride=op.stride, padding=op.padding) + b
        if isinstance(op, IntPoly):
            coeffs = self._poly_coeffs(op, layer.module, np.asarray(before.scale, np.float64), layer.name)
            m = _max(exact)
            _need_int64_exact(max(m**op.degree, sum(_max(op.coeffs[i]) * m**i for i in range(op.degree + 1))), op.name)
            return _poly(exact, torch.from_numpy(np.asarray(op.coeffs, dtype=np.int64))), _poly(grad, coeffs)
        if isinstance(op, IntSquare):
            _need_int64_exact(_max(exact) ** 2, op.name)
            return exact * exact, grad * grad
        if isinstance(op, IntSumPool2d):
            _need_float_exact(_max(exact) * op.kernel[0] * op.kernel[1], op.name)
            pool = lambda t: F.avg_pool2d(t, op.kernel, op.stride, op.padding, ceil_mode=False,  # noqa: E731
                                          count_include_pad=True, divisor_override=1)
            return pool(exact.double()).long(), pool(grad)
        if isinstance(op, IntFlatten):
            return exact.reshape(exact.shape[0], -1), grad.reshape(grad.shape[0], -1)
        if isinstance(op, IntAddConst):
            const = np.asarray(op.constant, dtype=np.int64)
            _need_int64_exact(_max(exact) + _max(const), op.name)
            return exact + torch.from_numpy(const), grad + _t(const)
        raise ConfigError(f"{op.name}: fake-quant has no form for integer op {op.kind!r}")

    # -- forward ---------------------------------------------------------------
    def forward_int(self, x: torch.Tensor | ArrayLike) -> tuple[torch.Tensor, torch.Tensor, NDArray[np.float64]]:
        """Output integers: exact (int64, no gradient), their float64 surrogate (with gradient), and the output scale.

        Raises:
            ConfigError: an integer or partial sum could pass 2**63 (2**53 in
                Conv2d and AvgPool2d), where torch cannot reproduce it exactly.
        """
        grad = self.quantize_input(x)
        v: _Pair = (grad.long(), grad)
        iq = self.input_quant
        state = ConvState(shape=iq.shape, scale=np.asarray(iq.scale), offset=np.zeros((), np.int64))
        for layer in self.chain:
            ops, after = converter_for(layer.module)(layer.module, layer.name, state, self.config)
            for op in ops:
                v = self._apply(op, layer, v, state, after)
            state = after
        return v[0], v[1], state.full_scale()

    def forward(self, x: torch.Tensor | ArrayLike) -> torch.Tensor:
        """Float64 scores ``y / output_scale``: exactly what ``convert().predict(x)`` returns.

        The value comes from the exact integers; the gradient from their surrogate.
        """
        exact, grad, scale = self.forward_int(x)
        s = _t(scale)
        value = exact.double() / s
        if not grad.requires_grad:
            return value
        return _Exact.apply(grad / s, value, torch.ones_like(value))

    def convert(self, modulus: int | None = None) -> QuantizedModel:
        """The integer model with the identical parameters: ``quantize_model`` of the trained model.

        Raises:
            ModulusOverflowError: ``modulus`` is too small.
        """
        return quantize_model(self.model, self.calibration, config=self.config, modulus=modulus)
