"""``quantize_model``: a torch model and calibration data in, an integer model out."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from torch import nn

import secquant.quant.converters  # noqa: F401  (registers the built-in converters)
from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.quant.calibration import Symmetry, qmax
from secquant.quant.config import QuantConfig
from secquant.quant.graph import ChainLayer, extract_chain, fold_batchnorm
from secquant.quant.intops import IntAddConst, IntOp
from secquant.quant.primitives import Rounding, round_values
from secquant.quant.model import InputQuant, QuantizedModel, observed_max
from secquant.quant.registry import ConvState, converter_for, suggestion_for

__all__ = ["calibration_array", "fit_input_quant", "prepare_chain", "quantize_model"]

#: Calibration examples used to measure observed ranges for reports.
OBSERVED_SAMPLES = 512


def prepare_chain(model: nn.Module) -> list[ChainLayer]:
    """Flatten ``model`` to a chain, fold BatchNorm, and check every layer is supported.

    Raises:
        UnsupportedLayerError: listing every offending layer at once, each with
            what to use instead.
    """
    chain, problems = fold_batchnorm(extract_chain(model))
    for layer in chain:
        if converter_for(layer.module) is None:
            problems.append(f"{layer.name} ({type(layer.module).__name__}): {suggestion_for(layer.module)}")
    if problems:
        raise UnsupportedLayerError(problems)
    return chain


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
) -> QuantizedModel:
    """Convert a torch model into an exact integer model.

    Args:
        model: ``nn.Sequential`` or a simple chain of supported layers (Linear,
            Conv2d, AvgPool2d, Flatten, BatchNorm after Linear/Conv2d,
            ``secquant.nn.Square``, ``secquant.nn.Poly``, Identity, Dropout).
        calibration: Example inputs of shape (n, *input_shape); they fix the
            input range unless ``config.input_range`` is given.
        bits: Weight bits; overrides ``config.bits`` (default 8).
        config: All other choices; see :class:`QuantConfig`.
        modulus: The plaintext modulus to check against; the smallest that
            holds the network when omitted.

    Raises:
        UnsupportedLayerError: listing every unsupported layer and what to use instead.
        ModulusOverflowError: ``modulus`` is too small, naming the first layer
            that does not fit and the modulus needed.
        ConfigError: invalid calibration data or options.
    """
    if config is None:
        cfg = QuantConfig(bits=8 if bits is None else bits)
    else:
        cfg = config if bits is None else config.with_(bits=bits)
    data = calibration_array(calibration)
    was_training = model.training
    model.eval()
    try:
        chain = prepare_chain(model)
        iq = fit_input_quant(data, cfg)
        state = ConvState(shape=iq.shape, scale=np.asarray(iq.scale), offset=np.asarray(iq.offset, dtype=np.int64))
        ops: list[IntOp] = []
        for layer in chain:
            new_ops, state = converter_for(layer.module)(layer.module, layer.name, state, cfg)
            ops.extend(new_ops)
        if state.has_offset:
            ops.append(IntAddConst(name="output.zero_point", constant=-np.asarray(state.full_offset())))
    finally:
        model.train(was_training)
    out_scale = state.full_scale()
    draft = QuantizedModel(iq, tuple(ops), out_scale, modulus=2**4096, config=cfg.to_dict())
    sample = draft.quantize_input(data[:OBSERVED_SAMPLES])
    observed = observed_max(draft.ops, draft.bounds(), sample)
    chosen = draft.modulus_needed if modulus is None else int(modulus)
    return QuantizedModel(iq, tuple(ops), out_scale, modulus=chosen, config=cfg.to_dict(), observed=observed)
