"""Replace ReLU and friends with least-squares polynomials fitted over the ranges data reaches.

:func:`approximate_activations` runs calibration data through a copy of the
model, records the input range of every activation with forward hooks, and
swaps each activation for a :class:`~secquant.nn.Poly` fitted by least
squares on a uniform grid over that range.  The polynomials are learnable, so
the model is then fine-tuned (in float, or with
:mod:`secquant.tuning.qat`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.nn.layers import Poly

__all__ = ["FITTABLE", "ActivationFit", "approximate_activations", "fit_polynomial"]


def _np(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    return lambda x: fn(torch.from_numpy(x)).numpy()


#: Activation types that can be replaced, and the function each computes.
FITTABLE: dict[type[nn.Module], Callable[[nn.Module], Callable[[NDArray[np.float64]], NDArray[np.float64]]]] = {
    nn.ReLU: lambda m: _np(torch.relu),
    nn.LeakyReLU: lambda m: _np(lambda t: torch.nn.functional.leaky_relu(t, m.negative_slope)),
    nn.GELU: lambda m: _np(lambda t: torch.nn.functional.gelu(t, approximate=m.approximate)),
    nn.SiLU: lambda m: _np(torch.nn.functional.silu),
    nn.ELU: lambda m: _np(lambda t: torch.nn.functional.elu(t, m.alpha)),
    nn.Sigmoid: lambda m: _np(torch.sigmoid),
    nn.Tanh: lambda m: _np(torch.tanh),
    nn.Softplus: lambda m: _np(lambda t: torch.nn.functional.softplus(t, m.beta, m.threshold)),
}

#: Points of the uniform least-squares grid.
GRID_POINTS = 2001


@dataclass(frozen=True)
class ActivationFit:
    """One replaced activation.

    Attributes:
        name: Dotted module name in the model.
        kind: Type name of the replaced activation (``"ReLU"``...).
        lo, hi: Input range fitted over (calibration min/max, widened by ``margin``).
        coeffs: Fitted coefficients, lowest power first.
        max_error: Largest |activation - polynomial| on the fitting grid.
    """

    name: str
    kind: str
    lo: float
    hi: float
    coeffs: tuple[float, ...]
    max_error: float


def fit_polynomial(
    fn: Callable[[NDArray[np.float64]], NDArray[np.float64]], lo: float, hi: float, degree: int
) -> tuple[NDArray[np.float64], float]:
    """Least-squares polynomial of ``degree`` for ``fn`` on a uniform grid over [lo, hi].

    Returns:
        (coefficients lowest power first, max absolute error on the grid).

    Raises:
        ConfigError: empty or non-finite range, or degree < 1.
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"fitting range must be finite with lo < hi, got [{lo}, {hi}]")
    if degree < 1:
        raise ConfigError(f"degree must be at least 1, got {degree}")
    x = np.linspace(lo, hi, GRID_POINTS)
    y = fn(x)
    coeffs = np.polynomial.polynomial.Polynomial.fit(x, y, degree).convert().coef
    coeffs = np.pad(coeffs, (0, degree + 1 - coeffs.size))
    err = float(np.max(np.abs(np.polynomial.polynomial.polyval(x, coeffs) - y)))
    return coeffs, err


def _check_args(degree: int, margin: float) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= 8:
        raise ConfigError(f"degree must be an int in [1, 8], got {degree!r}; 2 is the cheapest non-linear choice")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"margin must be a finite fraction >= 0, got {margin!r}")


def _calibration_tensor(calibration: Any) -> torch.Tensor:
    if calibration is None:
        raise ConfigError("approximate_activations needs calibration data to see the activation input ranges")
    t = calibration if isinstance(calibration, torch.Tensor) else torch.as_tensor(np.asarray(calibration))
    if t.ndim < 2 or t.shape[0] == 0:
        raise ConfigError(f"calibration data must have shape (n, ...) with n >= 1, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ConfigError("calibration data contains NaN or infinity")
    return t


def _record_ranges(model: nn.Module, names: list[str], data: torch.Tensor) -> dict[str, tuple[float, float]]:
    ranges: dict[str, list[float]] = {}
    handles = []
    modules = dict(model.named_modules())

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
            x = inputs[0].detach()
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name, [lo, hi])
            ranges[name] = [min(old[0], lo), max(old[1], hi)]

        return record

    for name in names:
        handles.append(modules[name].register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            dtype = next((p.dtype for p in model.parameters()), torch.float32)
            model(data.to(dtype))
    finally:
        for h in handles:
            h.remove()
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def _fit(module: nn.Module, seen: tuple[float, float], degree: int,
         margin: float) -> tuple[NDArray[np.float64], float, float, float]:
    """Coefficients fitted to ``module`` over the range ``seen`` widened by ``margin``; the range and the error."""
    lo, hi = seen
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    width = hi - lo
    lo, hi = lo - margin * width, hi + margin * width
    coeffs, err = fit_polynomial(FITTABLE[type(module)](module), lo, hi, degree)
    top = float(np.max(np.abs(coeffs)))
    keep = int(np.max(np.nonzero(np.abs(coeffs) > 1e-9 * top)[0])) + 1
    coeffs = coeffs[: max(keep, 2)]
    if coeffs[-1] == 0:
        coeffs[-1] = 1e-9 * top
    return coeffs, lo, hi, err


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _functional_to_modules(model: nn.Module) -> nn.Module:
    """``model`` with every functional activation (``F.relu(x)``, ``x.relu()``, ``torch.tanh``...) made a module.

    The model is traced with torch.fx and each call is replaced by a call to a
    new activation module, so the result is a ``torch.fx.GraphModule``.  A
    model without functional activations, or that fx cannot trace, is
    returned as it is.
    """
    import secquant.quant.converters  # noqa: F401  (registers Square and Poly as leaves of the trace)
    from secquant.errors import UnsupportedLayerError
    from secquant.quant.fxtrace import ACTIVATION_FUNCTIONS, functional_module, trace

    try:
        gm = trace(model)
    except UnsupportedLayerError:
        return model
    calls = [n for n in gm.graph.nodes if n.op in ("call_function", "call_method") and n.target in ACTIVATION_FUNCTIONS]
    if not calls:
        return model
    for node in calls:
        name, k = f"{node.name}_fn", 1
        while hasattr(gm, name):
            k += 1
            name = f"{node.name}_fn{k}"
        gm.add_submodule(name, functional_module(node))
        with gm.graph.inserting_after(node):
            call = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return gm


def approximate_activations(
    model: nn.Module,
    degree: int = 2,
    *,
    calibration: Any = None,
    margin: float = 0.1,
    learnable: bool = True,
    fits: list[ActivationFit] | None = None,
) -> nn.Module:
    """Return a copy of ``model`` whose activations are fitted polynomials.

    Every ReLU, LeakyReLU, GELU, SiLU, ELU, Sigmoid, Tanh and Softplus is
    replaced by a :class:`~secquant.nn.Poly` of ``degree`` fitted by least
    squares over the input range that ``calibration`` reaches, widened by
    ``margin`` (a fraction of its width) on each side.  Modules are swapped in
    place (``nn.Sequential`` and class-based models keep their class);
    functional calls (``F.relu(x)``, ``x.relu()``, ``torch.tanh(x)`` inside
    ``forward``) are first rewritten into modules on the torch.fx graph, and
    the result is then a ``torch.fx.GraphModule``.  The original model is not
    modified.

    Args:
        model: A torch model.
        degree: Polynomial degree in [1, 8]; 2 costs one multiplication.
        calibration: Inputs of shape (n, *input_shape) (tensor or array).
        margin: Fraction of the observed width added on each side, >= 0.
        learnable: Make the coefficients trainable for fine-tuning.
        fits: If given, one :class:`ActivationFit` per replaced module is appended.

    Returns:
        A new model (in eval mode) with polynomial activations.

    Raises:
        ConfigError: no calibration data, bad degree or margin, an activation
            that the calibration data never reached, or nothing to replace.
    """
    _check_args(degree, margin)
    data = _calibration_tensor(calibration)
    new = _functional_to_modules(copy.deepcopy(model).eval()).eval()
    targets = [(n, m) for n, m in new.named_modules() if type(m) in FITTABLE and n]
    if not targets:
        raise ConfigError(
            "the model has no ReLU/GELU/SiLU/ELU/LeakyReLU/Sigmoid/Tanh/Softplus activations to replace, "
            "as modules or as functional calls that torch.fx can trace"
        )
    ranges = _record_ranges(new, [n for n, _ in targets], data)
    for name, module in targets:
        if name not in ranges:
            raise ConfigError(f"activation {name!r} was not reached by the calibration data; is it used in forward()?")
        coeffs, lo, hi, err = _fit(module, ranges[name], degree, margin)
        _set_submodule(new, name, Poly(coeffs.tolist(), learnable=learnable))
        if fits is not None:
            fits.append(ActivationFit(name, type(module).__name__, lo, hi, tuple(float(c) for c in coeffs), err))
    return new
