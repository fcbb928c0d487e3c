"""Converters from torch layers to integer ops, keyed by layer type.

A converter takes the torch module, its name, the :class:`ConvState` of its
input (shape, per-element scale and zero point) and the config, and returns
the integer ops it becomes plus the state of its output.  Registering a second
converter for a type raises unless ``replace=True`` says so explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from torch import nn

from secquant.errors import ConfigError
from secquant.quant.config import QuantConfig
from secquant.quant.intops import IntOp

__all__ = [
    "ConvState",
    "Converter",
    "converter_for",
    "register_converter",
    "suggestion_for",
]


@dataclass(frozen=True, eq=False)
class ConvState:
    """What is known about the integers flowing between two layers.

    The real value of element ``i`` is ``(u[i] - offset[i]) / scale[i]``.

    Attributes:
        shape: Shape of one example (no batch axis).
        scale: float64, broadcastable to ``shape``.
        offset: Integer zero point (int64 or object), broadcastable to ``shape``.
    """

    shape: tuple[int, ...]
    scale: NDArray[np.float64]
    offset: NDArray[Any]

    @property
    def has_offset(self) -> bool:
        """Whether any zero point is non-zero."""
        return bool(np.any(np.asarray(self.offset) != 0))

    def full_scale(self) -> NDArray[np.float64]:
        """The scale broadcast to ``shape``."""
        return np.broadcast_to(np.asarray(self.scale, dtype=np.float64), self.shape).copy()

    def full_offset(self) -> NDArray[Any]:
        """The zero point broadcast to ``shape``."""
        return np.broadcast_to(np.asarray(self.offset), self.shape).copy()


Converter = Callable[[nn.Module, str, ConvState, QuantConfig], tuple[list[IntOp], ConvState]]
F = TypeVar("F", bound=Converter)

_CONVERTERS: dict[type[nn.Module], Converter] = {}

_SUGGESTIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "use secquant.nn.Square or secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.LeakyReLU: "use secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.GELU: "use secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.SiLU: "use secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.ELU: "use secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.Sigmoid: "use secquant.nn.Poly (e.g. 0.5 + 0.197x - 0.004x³), or approximate_activations",
    nn.Tanh: "use secquant.nn.Poly, or secquant.nn.approximate_activations(model)",
    nn.MaxPool2d: "use nn.AvgPool2d: a maximum needs comparisons, which HE cannot do",
    nn.Softmax: "drop it: argmax is unchanged; apply softmax to the decrypted scores",
    nn.LogSoftmax: "drop it: argmax is unchanged; apply log-softmax to the decrypted scores",
}


def register_converter(*types: type[nn.Module], replace: bool = False) -> Callable[[F], F]:
    """Decorator registering a converter for torch layer ``types``.

    Raises:
        ConfigError: a type already has a converter and ``replace`` is False.
    """

    def decorate(fn: F) -> F:
        for t in types:
            if t in _CONVERTERS and not replace:
                raise ConfigError(
                    f"a converter for {t.__name__} is already registered "
                    f"({_CONVERTERS[t].__qualname__}); pass replace=True to override it"
                )
            _CONVERTERS[t] = fn
        return fn

    return decorate


def converter_for(module: nn.Module) -> Converter | None:
    """The converter registered for the module's exact type, else for its nearest base."""
    for cls in type(module).__mro__:
        if cls in _CONVERTERS:
            return _CONVERTERS[cls]
        if cls is nn.Module:
            break
    return None


def suggestion_for(module: nn.Module) -> str:
    """What to use instead of an unsupported layer."""
    for cls in type(module).__mro__:
        if cls in _SUGGESTIONS:
            return _SUGGESTIONS[cls]
    return "replace it with Linear, Conv2d, AvgPool2d, Flatten, Square or Poly, or register a converter"


def registered_types() -> tuple[type[Any], ...]:
    """Layer types that have a converter."""
    return tuple(_CONVERTERS)
