"""``quantize_model``: a torch model and calibration data in, an integer model out."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from torch import nn

import secquant.quant.converters  # noqa: F401  (registers the built-in converters)
from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.quant.build import build_graph
from secquant.quant.calibration import Symmetry, qmax
from secquant.quant.config import QuantConfig
from secquant.quant.converters_graph import merge_converter_for
from secquant.quant.graph import GraphLayer, extract_graph, fold_batchnorm
from secquant.quant.model import InputQuant, QuantizedModel, observed_max
from secquant.quant.primitives import Rounding, round_values
from secquant.quant.registry import ConvState, converter_for, suggestion_for
from secquant.quant.requantize_config import RequantizeConfig

__all__ = ["calibration_array", "fit_input_quant", "prepare_graph", "quantize_model"]

#: Calibration examples used to measure observed ranges for reports.
OBSERVED_SAMPLES = 512


def prepare_graph(model: nn.Module) -> list[GraphLayer]:
    """Trace ``model`` into layers, fold BatchNorm where it can be, and check every layer is supported.

    Raises:
        UnsupportedLayerError: listing every offending layer or call at once,
            each with what to use instead (``approximate_activations`` for
            ReLU and friends, AvgPool2d for MaxPool2d...).
    """
    layers, problems = extract_graph(model)
    layers = fold_batchnorm(layers)
    for layer in layers:
        if converter_for(layer.module) is None and merge_converter_for(layer.module) is None:
            problems.append(f"{layer.name} ({type(layer.module).__name__}): {suggestion_for(layer.module)}")
    if problems:
        raise UnsupportedLayerError(problems)
    return layers


def calibration_array(calibration: Any) -> NDArray[np.float64]:
    """Calibration inputs as a finite float64 array of shape (n, ...), n >= 1.

    Raises:
        ConfigError: empty, wrongly shaped or non-finite data.
    """
    if hasattr(calibration, "detach"):
        calibration = calibration.detach().cpu().numpy()
    arr = np.asarray(calibration, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ConfigError(f"calibration data must have shape (n, ...) with n >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("calibration data contains NaN or infinity")
    return arr


def fit_input_quant(data: NDArray[np.float64], cfg: QuantConfig) -> InputQuant:
    """The input quantization ``quantize_model`` uses for calibration ``data`` under ``cfg``.

    The range is ``cfg.input_range`` or the input method's range of the data;
    SYMMETRIC maps it onto ±qmax, ASYMMETRIC onto all 2**bits levels centred on
    zero by an integer offset.
    """
    bits = cfg.effective_input_bits
    if cfg.input_range is not None:
        lo, hi = cfg.input_range
    else:
        lo_a, hi_a = cfg.input_method.range(data, None, bits, cfg.input_symmetry)
        lo, hi = float(lo_a), float(hi_a)
    if cfg.input_symmetry is Symmetry.SYMMETRIC:
        m = max(abs(lo), abs(hi)) or 1.0
        scale, offset = qmax(bits) / m, 0
    else:
        if hi <= lo:
            hi = lo + 1.0
        scale = (2**bits - 1) / (hi - lo)
        offset = -int(np.floor(scale * (lo + hi) / 2 + 0.5))
    if cfg.input_rounding is Rounding.STOCHASTIC:
        v_lo, v_hi = int(np.floor(scale * lo + offset)), int(np.ceil(scale * hi + offset))
    else:
        v_lo, v_hi = (int(v) for v in round_values(np.array([scale * lo + offset, scale * hi + offset]), cfg.input_rounding))
    return InputQuant(scale=float(scale), offset=offset, lo=v_lo, hi=v_hi, rounding=cfg.input_rounding,
                      on_overflow=cfg.input_overflow, shape=tuple(data.shape[1:]))


def quantize_model(
    model: nn.Module,
    calibration: ArrayLike,
    bits: int | None = None,
    *,
    config: QuantConfig | None = None,
    modulus: int | None = None,
    requantize: RequantizeConfig | None = None,
) -> QuantizedModel:
    """Convert a torch model into an exact integer model.

    Args:
        model: Any ``nn.Module`` that torch.fx can trace (``nn.Sequential`` or
            a class with a ``forward``), built from supported steps: Linear,
            Conv1d, Conv2d, AvgPool2d, AdaptiveAvgPool2d, Flatten and flattening
            views, BatchNorm1d/2d, ``secquant.nn.Square`` and ``Poly``, ``x * x``,
            residual ``x + y``, ``torch.cat`` along channels, constant scaling,
            Identity, Dropout.  See ``docs/models.md``.
        calibration: Example inputs of shape (n, *input_shape); they fix the
            input range unless ``config.input_range`` is given.
        bits: Weight bits; overrides ``config.bits`` (default 8).
        config: All other choices; see :class:`QuantConfig`.
        modulus: The plaintext modulus to check against; the smallest that
            holds the network when omitted.
        requantize: Scale integers back between layers; overrides
            ``config.requantize``.  None keeps today's exact model, whose bits
            grow with depth.

    Raises:
        UnsupportedLayerError: listing every unsupported layer and what to use instead.
        ModulusOverflowError: ``modulus`` is too small, naming the first layer
            that does not fit and the modulus needed.
        ConfigError: invalid calibration data or options.
    """
    cfg = QuantConfig(bits=8 if bits is None else bits) if config is None else (
        config if bits is None else config.with_(bits=bits))
    if requantize is not None:
        cfg = cfg.with_(requantize=requantize)
    data = calibration_array(calibration)
    was_training = model.training
    model.eval()
    try:
        layers = prepare_graph(model)
        iq = fit_input_quant(data, cfg)
        sample = _quantize_sample(iq, data[:OBSERVED_SAMPLES]) if cfg.requantize else None
        built = build_graph(layers, input_state(iq), cfg, input_interval(iq) if cfg.requantize else None, sample)
    finally:
        model.train(was_training)
    graph = built.graph
    out_scale = built.output.full_scale()
    draft = QuantizedModel(iq, graph, out_scale, modulus=2**4096, config=cfg.to_dict())
    observed = observed_max(graph, draft.bounds(), draft.quantize_input(data[:OBSERVED_SAMPLES]))
    chosen = draft.modulus_needed if modulus is None else int(modulus)
    return QuantizedModel(iq, graph, out_scale, modulus=chosen, config=cfg.to_dict(), observed=observed)


def _quantize_sample(iq: InputQuant, data: NDArray[np.float64]) -> NDArray[np.int64]:
    """Calibration inputs as the integers ``qm.quantize_input`` gives (zero point included)."""
    return np.clip(round_values(iq.scale * data + iq.offset, iq.rounding), iq.lo, iq.hi).astype(np.int64)


def input_state(iq: InputQuant) -> ConvState:
    """What the converters know about the input integers: shape, scale, zero point."""
    return ConvState(shape=iq.shape, scale=np.asarray(iq.scale), offset=np.asarray(iq.offset, dtype=np.int64))


def input_interval(iq: InputQuant) -> tuple[NDArray[Any], NDArray[Any]]:
    """Per-element bounds of the input integers."""
    return np.full(iq.shape, iq.lo, dtype=object), np.full(iq.shape, iq.hi, dtype=object)
