"""Activations built from additions and multiplications only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from secquant.errors import ConfigError

__all__ = ["Poly", "Square"]


class Square(nn.Module):
    """Element-wise x²: the cheapest non-linearity under homomorphic encryption."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class Poly(nn.Module):
    """Element-wise polynomial ``sum_i coeffs[i] * x**i`` (ascending powers).

    Args:
        coeffs: At least two coefficients, lowest power first; the highest must be non-zero.
        learnable: Train the coefficients with the rest of the model.

    Raises:
        ConfigError: fewer than two coefficients, a non-finite one, or a zero leading one.
    """

    def __init__(self, coeffs: Sequence[float], learnable: bool = False) -> None:
        super().__init__()
        values = torch.as_tensor([float(c) for c in coeffs], dtype=torch.float32)
        if values.numel() < 2 or not torch.isfinite(values).all():
            raise ConfigError("Poly needs at least two finite coefficients (lowest power first)")
        if values[-1] == 0:
            raise ConfigError("Poly's leading coefficient must be non-zero; drop trailing zeros")
        if learnable:
            self.coeffs = nn.Parameter(values)
        else:
            self.register_buffer("coeffs", values)

    @property
    def degree(self) -> int:
        """Highest power."""
        return int(self.coeffs.numel()) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x) + self.coeffs[-1]
        for c in reversed(self.coeffs[:-1]):
            out = out * x + c
        return out

    def extra_repr(self) -> str:
        return "coeffs=[" + ", ".join(f"{float(c):.4g}" for c in self.coeffs) + "]"
