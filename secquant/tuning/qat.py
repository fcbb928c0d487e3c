"""Quantization-aware training whose forward pass *is* the integer model.

:class:`FakeQuantModel` wraps a float model that :func:`secquant.quantize_model`
accepts.  On every forward pass it asks the registered converters for the
integer ops the current weights become (the code ``quantize_model`` runs, so
the same rounding ``floor(x + 1/2)``, the same per-channel scales, the same
clipping) and evaluates them twice:

* **exactly**, with the integer ops' own ``forward`` on numpy integers (float64
  BLAS, int64 or Python ints, chosen by a bound computed from the batch, as
  :mod:`secquant.quant.exact` does), on the input quantized by the same
  ``round_values`` as ``qm.quantize_input``, dequantized by the same division;
* as a float64 torch **surrogate** that carries the gradient.

The output takes its value from the exact path and its gradient from the
surrogate, so the scores equal ``qm.predict`` bit for bit in training and in
evaluation, at any bit width.

Gradients use the straight-through estimator: each integer weight, bias and
polynomial coefficient carries the gradient of its unrounded value
(``c·W/s``, ``c·b``, ``ca·a_i·s^(d-i)``, scales held constant), zero where
clipping saturated a weight.  Activations are never rounded in the integer
model, so they need no estimator.

Both paths carry ``v = u - z`` (integers with the input zero point removed);
the integer model computes the same values with ``z`` folded into the first bias.

The model may be a graph (residual adds, concatenations) and may be
requantized (``config.requantize``): the integer ops come from the same
:func:`~secquant.quant.build.build_graph` as ``quantize_model``'s, so the
requantize multipliers and shifts (chosen from proven bounds, which a zero
point shifts but does not change) are the same; a requantize op's surrogate is
``v · M / 2**s``, its value the exact rounding.
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
from secquant.quant.build import BuiltNode, build_graph
from secquant.quant.calibration import qmax
from secquant.quant.config import QuantConfig
from secquant.quant.convert import (
    OBSERVED_SAMPLES,
    calibration_array,
    fit_input_quant,
    prepare_graph,
    quantize_model,
)
from secquant.quant.converters import poly_coefficient_scale
from secquant.quant.dag import INPUT
from secquant.quant.graph import GraphLayer
from secquant.quant.intops import (
    IntAdd,
    IntAddConst,
    IntConcat,
    IntConv1d,
    IntConv2d,
    IntFlatten,
    IntLinear,
    IntOp,
    IntPoly,
    IntRequantize,
    IntScale,
    IntSquare,
    IntSumPool2d,
    max_abs,
)
from secquant.quant.model import InputQuant, QuantizedModel
from secquant.quant.primitives import Rounding, round_values
from secquant.quant.registry import ConvState

__all__ = ["FakeQuantModel", "runtime_bound"]


class _Exact(torch.autograd.Function):
    """Forward: the exact values.  Backward: the surrogate's gradient, masked where clipped."""

    @staticmethod
    def forward(ctx: Any, surrogate: torch.Tensor, exact: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return exact.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def _t(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float64)))


def _ste(surrogate: torch.Tensor, exact: NDArray[Any], limit: float | None = None) -> torch.Tensor:
    """``exact`` (as float64) in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    exact_t = _t(exact).reshape(surrogate.shape)
    if not surrogate.requires_grad:
        return exact_t
    mask = torch.ones_like(surrogate) if limit is None else (surrogate.detach().abs() <= limit + 0.5).double()
    return _Exact.apply(surrogate, exact_t, mask)


def runtime_bound(op: IntOp, m: int) -> int:
    """A bound on every partial result of ``op`` for inputs with ``|x| <= m`` (:meth:`IntOp.runtime_bound`).

    It plays the role of the proven ``partial_max_abs`` of the bound analysis
    (which covers every input in range), only for the batch at hand, so the
    exact kernels pick the same kind of arithmetic or a wider one.
    """
    return op.runtime_bound(m)


def _constant_surrogate(op: IntOp, vs: list[torch.Tensor]) -> torch.Tensor | None:
    """Surrogates of ops without trained parameters (None for the others)."""
    v = vs[0]
    if isinstance(op, IntSquare):
        return v * v
    if isinstance(op, IntSumPool2d):
        return F.avg_pool2d(v, op.kernel, op.stride, op.padding, ceil_mode=False, count_include_pad=True, divisor_override=1)
    if isinstance(op, IntFlatten):
        return v.reshape(v.shape[0], -1)
    if isinstance(op, IntAddConst):
        return v + _t(op.constant)
    if isinstance(op, IntScale):
        return v * _t(op.multiplier) + _t(op.bias)
    if isinstance(op, IntRequantize):
        return v * _t(op.factor)
    if isinstance(op, IntAdd):
        return sum(_t(w) * x for w, x in zip(op.weights, vs))  # type: ignore[return-value]
    if isinstance(op, IntConcat):
        return torch.cat(vs, dim=op.axis + 1)
    return None


class FakeQuantModel(nn.Module):
    """A float model trained through the exact integer semantics of ``quantize_model``.

    The wrapped model's own parameters are trained (no copy); :meth:`convert`
    then returns ``quantize_model(model, calibration, config=config)``, whose
    ``predict`` equals this module's eval-mode output exactly.

    Args:
        model: Float model that ``quantize_model`` accepts (a chain or a graph
            of Linear, Conv1d/2d, pooling, Flatten, Square, Poly, residual adds,
            concatenations; Dropout is ignored as in the integer model).
            BatchNorm must be folded first.
        calibration: Inputs of shape (n, *input_shape) that fix the input
            quantization, as in ``quantize_model``.
        config: Quantization choices (bits, per-layer bits, clipping methods,
            input range, requantization); input rounding must be NEAREST or FLOOR.

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
        self.calibration = calibration_array(calibration)
        self.layers: list[GraphLayer] = prepare_graph(model)
        self.input_quant: InputQuant = fit_input_quant(self.calibration, self.config)

    # -- input ---------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor | ArrayLike) -> NDArray[np.int64]:
        """Input integers with the zero point removed: ``clip(round(C·x + d), lo, hi) - d``.

        The same numpy code as :meth:`QuantizedModel.quantize_input`.
        """
        xs = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        iq = self.input_quant
        arr = np.asarray(xs, dtype=np.float64).reshape(-1, *iq.shape)
        if not np.all(np.isfinite(arr)):
            raise ConfigError("inputs contain NaN or infinity")
        v = np.clip(round_values(iq.scale * arr + iq.offset, iq.rounding), iq.lo, iq.hi)
        return v.astype(np.int64) - iq.offset

    # -- surrogates (gradients) ------------------------------------------------
    def _weighted(self, op: IntLinear | IntConv2d | IntConv1d, module: nn.Module, before: ConvState,
                  after: ConvState, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        w = module.weight.double()
        c = np.asarray(after.scale, dtype=np.float64).reshape(-1)
        if isinstance(op, IntLinear):
            s_in = before.full_scale()
        else:
            full = before.full_scale()
            s_in = full.reshape(full.shape[0], -1)[:, 0]
        shape = (1, -1, *([1] * (w.dim() - 2)))
        sur_w = w / _t(s_in).reshape(shape) * _t(c).reshape(-1, *([1] * (w.dim() - 1)))
        b = module.bias.double() if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        sur_b = (b * _t(c)).reshape(np.shape(op.bias))
        return _ste(sur_w, op.weight, qmax(self.config.bits_for(name))), _ste(sur_b, op.bias)

    def _poly_coeffs(self, op: IntPoly, module: Poly, s_in: NDArray[np.float64], name: str) -> torch.Tensor:
        a = module.coeffs.double()
        d = a.shape[0] - 1
        ca = poly_coefficient_scale(a.detach().numpy(), self.config.bits_for(name))
        shape = np.shape(op.coeffs)
        powers = _t(np.stack([np.broadcast_to(np.asarray(s_in, np.float64) ** (d - i), shape[1:]) for i in range(d + 1)]))
        return _ste(ca * a.reshape(-1, *([1] * (len(shape) - 1))) * powers, op.coeffs)

    def _surrogate(self, built: BuiltNode, vs: list[torch.Tensor]) -> torch.Tensor:
        op, layer = built.node.op, built.layer
        out = _constant_surrogate(op, vs)
        if out is not None:
            return out
        v = vs[0]
        if isinstance(op, (IntLinear, IntConv2d, IntConv1d)) and layer is not None:
            w, b = self._weighted(op, layer.module, built.before[0], built.after, layer.name)
            if isinstance(op, IntLinear):
                return v @ w.T + b
            if isinstance(op, IntConv1d):
                return F.conv1d(v, w, stride=op.stride, padding=op.padding) + b
            return F.conv2d(v, w, stride=op.stride, padding=op.padding) + b
        if isinstance(op, IntPoly) and layer is not None:
            coeffs = self._poly_coeffs(op, layer.module, np.asarray(built.before[0].scale, np.float64), layer.name)
            total, power = torch.zeros_like(v) + coeffs[0], torch.ones_like(v)
            for i in range(1, op.degree + 1):
                power = power * v
                total = total + coeffs[i] * power
            return total
        raise ConfigError(f"{op.name}: fake-quant has no surrogate for integer op {op.kind!r}")

    # -- forward ---------------------------------------------------------------
    def forward_int(self, x: torch.Tensor | ArrayLike) -> tuple[NDArray[Any], torch.Tensor, NDArray[np.float64]]:
        """The output integers (exact numpy ints), their float64 surrogate (with gradient), and the output scale."""
        exact = self.quantize_input(x)
        iq = self.input_quant
        state = ConvState(shape=iq.shape, scale=np.asarray(iq.scale), offset=np.zeros((), np.int64))
        interval, sample = None, None
        if self.config.requantize is not None:
            interval = (np.full(iq.shape, iq.lo - iq.offset, dtype=object), np.full(iq.shape, iq.hi - iq.offset, dtype=object))
            sample = self.quantize_input(self.calibration[:OBSERVED_SAMPLES])
        built = build_graph(self.layers, state, self.config, interval, sample)
        values: dict[str, NDArray[Any]] = {INPUT: exact}
        grads: dict[str, torch.Tensor] = {INPUT: _t(exact)}
        track = torch.is_grad_enabled()
        for bn in built.nodes:
            ins = [values[i] for i in bn.node.inputs]
            op = bn.node.op
            values[bn.node.name] = op.apply(ins, op.runtime_bound(max(max_abs(a) for a in ins)))
            if track:
                grads[bn.node.name] = self._surrogate(bn, [grads[i] for i in bn.node.inputs])
        out = built.nodes[-1].node.name
        return values[out], grads[out] if track else _t(values[out]), built.output.full_scale()

    def forward(self, x: torch.Tensor | ArrayLike) -> torch.Tensor:
        """Float64 scores ``y / output_scale``: exactly what ``convert().predict(x)`` returns.

        The value comes from the exact integers (dequantized by the same numpy
        division as ``qm.dequantize_output``); the gradient from the surrogate.
        """
        exact, grad, scale = self.forward_int(x)
        value = torch.from_numpy(np.asarray(exact, dtype=np.float64) / scale)
        if not grad.requires_grad:
            return value
        return _Exact.apply(grad / _t(scale), value, torch.ones_like(value))

    def convert(self, modulus: int | None = None) -> QuantizedModel:
        """The integer model with the identical parameters: ``quantize_model`` of the trained model.

        Raises:
            ModulusOverflowError: ``modulus`` is too small.
        """
        return quantize_model(self.model, self.calibration, config=self.config, modulus=modulus)
