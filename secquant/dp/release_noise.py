"""The noisy release policy: outputs on a grid plus exact discrete Gaussian noise, with its (ε, δ).

Part of :mod:`secquant.dp.release` (imported from there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.dp.release_base import (
    ReleaseForm,
    ReleaseKind,
    check_json,
    float_scores,
    int_field,
    int_outputs,
    round_to_grid,
    whole_steps,
)
from secquant.errors import ConfigError

try:  # the dp package is where the samplers live from issue 13 on
    from secquant.dp.samplers import (
        MAX_DISCRETE_GAUSSIAN_SIGMA,
        sample_discrete_gaussian,
    )
except ImportError:  # pragma: no cover - until the move lands
    from secquant.audit.samplers import (
        MAX_DISCRETE_GAUSSIAN_SIGMA,
        sample_discrete_gaussian,
    )

__all__ = ["DiscreteGaussianLogits"]


@dataclass(frozen=True)
class DiscreteGaussianLogits:
    """Release the outputs on a grid plus discrete Gaussian noise, fresh for every query.

    Values are rounded (half up) to the grid of ``2**-resolution_bits`` units
    and get integer noise ``N_Z(0, (sigma * 2**resolution_bits)**2)`` in grid
    steps (exact Canonne–Kamath–Steinke sampler), independently per output.

    Attributes:
        sigma: Noise scale in units (logits, or integer steps), > 0.
        resolution_bits: Grid of ``2**-resolution_bits`` units, in [-62, 24];
            ``<= 0`` for integer outputs.
        sensitivity: Δ of the privacy statement, in grid steps (>= 1): two
            outputs that differ by at most Δ grid steps per coordinate are
            (ε, δ)-indistinguishable in one query of one coordinate.
        delta: δ of that statement, in [0, 1).

    Raises:
        ConfigError: a field out of range, or σ above the sampler's limit in grid steps.
    """

    sigma: float = 1.0
    resolution_bits: int = 6
    sensitivity: int = 1
    delta: float = 1e-5
    kind: ClassVar[ReleaseKind] = ReleaseKind.DISCRETE_GAUSSIAN
    form: ClassVar[ReleaseForm] = ReleaseForm.LOGITS

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float, np.integer, np.floating)):
            raise ConfigError(f"DiscreteGaussianLogits.sigma must be a number, got {self.sigma!r}")
        object.__setattr__(self, "sigma", float(self.sigma))
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"DiscreteGaussianLogits.sigma must be finite and > 0, got {self.sigma}")
        object.__setattr__(self, "resolution_bits", int_field(self.resolution_bits, "resolution_bits", -62, 24))
        object.__setattr__(self, "sensitivity", int_field(self.sensitivity, "sensitivity", 1, 2**40))
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not 0 <= self.delta < 1:
            raise ConfigError(f"delta must be a number in [0, 1), got {self.delta!r}")
        if self.grid_sigma > MAX_DISCRETE_GAUSSIAN_SIGMA:
            raise ConfigError(
                f"sigma={self.sigma:g} is {self.grid_sigma:.0f} grid steps, above the sampler's limit "
                f"{MAX_DISCRETE_GAUSSIAN_SIGMA:.0f}; lower resolution_bits"
            )

    @property
    def grid_sigma(self) -> float:
        """σ in grid steps: ``sigma * 2**resolution_bits``."""
        return self.sigma * 2.0 ** self.resolution_bits

    @property
    def label(self) -> str:
        """Short name, e.g. ``dgauss0.5``."""
        return f"dgauss{self.sigma:g}"

    def _noise(self, shape: tuple[int, ...], rng: np.random.Generator) -> NDArray[np.int64]:
        return sample_discrete_gaussian(self.grid_sigma, int(np.prod(shape)), rng).reshape(shape)

    def apply(self, int_logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """Integer outputs on the grid plus noise, in steps (``resolution_bits <= 0``).

        Raises:
            ConfigError: a grid finer than one step, or non-integer input.
        """
        shift = whole_steps(self)
        grid = round_to_grid(int_outputs(int_logits), shift)
        return (grid + self._noise(grid.shape, rng)) << shift

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """Float scores on the grid plus noise, in the scores' units."""
        scale = 2.0 ** self.resolution_bits
        grid = np.floor(float_scores(logits) * scale + 0.5).astype(np.int64)
        return (grid + self._noise(grid.shape, rng)) / scale

    def scaled(self, bits: int) -> DiscreteGaussianLogits:
        """The policy for values whose unit is ``2**-bits`` of this one's; same grid σ, same (ε, δ)."""
        b = int(bits)
        return DiscreteGaussianLogits(self.sigma * 2.0**b, self.resolution_bits - b, self.sensitivity, self.delta)

    def privacy(self, outputs: int = 1) -> tuple[float, float]:
        """(ε, δ) of one query that releases ``outputs`` coordinates, each moving by up to Δ grid steps.

        One coordinate: dp-accounting's exact discrete Gaussian privacy loss.
        Several: its privacy-loss distribution composed ``outputs`` times
        (pessimistic discretization, so an upper bound).

        Args:
            outputs: Coordinates per query (e.g. the model's classes), >= 1.

        Raises:
            ConfigError: ``outputs < 1``.
            ImportError: dp-accounting (the ``audit`` extra) is missing.
        """
        k = int_field(outputs, "outputs", 1, 10**6)
        if k == 1:
            try:
                from secquant.dp.accounting import discrete_gaussian_epsilon
            except ImportError:  # pragma: no cover - until the move lands
                from secquant.audit.accounting import discrete_gaussian_epsilon
            return discrete_gaussian_epsilon(self.grid_sigma, self.sensitivity, self.delta), float(self.delta)
        from dp_accounting.pld import privacy_loss_distribution as pld

        dist = pld.from_discrete_gaussian_mechanism(self.grid_sigma, sensitivity=self.sensitivity).self_compose(k)
        return float(dist.get_epsilon_for_delta(self.delta)), float(self.delta)

    @classmethod
    def calibrated(cls, epsilon: float, *, outputs: int = 1, resolution_bits: int = 6, sensitivity: int = 1,
                   delta: float = 1e-5) -> DiscreteGaussianLogits:
        """The least noise whose :meth:`privacy` for ``outputs`` coordinates is at most ``epsilon``.

        σ is found to 0.1 % by bisection, then rounded up to 3 significant digits.

        Raises:
            ConfigError: ``epsilon`` not positive, or it needs σ above the sampler's limit.
        """
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon < math.inf:
            raise ConfigError(f"epsilon must be a positive number, got {epsilon!r}")
        scale = 2.0 ** -int_field(resolution_bits, "resolution_bits", -62, 24)

        def make(grid_sigma: float) -> DiscreteGaussianLogits:
            return cls(grid_sigma * scale, resolution_bits, sensitivity, delta)

        lo, hi = 0.05, float(MAX_DISCRETE_GAUSSIAN_SIGMA)
        if make(hi).privacy(outputs)[0] > epsilon:
            raise ConfigError(f"ε={epsilon} at δ={delta} needs more than {hi:.0f} grid steps of noise; "
                              "lower the resolution or raise ε")
        while hi / lo > 1.001:
            mid = math.sqrt(lo * hi)
            lo, hi = (lo, mid) if make(mid).privacy(outputs)[0] <= epsilon else (mid, hi)
        digits = 2 - math.floor(math.log10(hi * scale))  # σ rounded up to 3 significant digits
        rounded = math.ceil(hi * scale * 10**digits) / 10**digits
        return cls(rounded, resolution_bits, sensitivity, delta)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (parameters only; ε comes from :meth:`privacy`)."""
        return {"kind": self.kind.value, "sigma": self.sigma, "resolution_bits": self.resolution_bits,
                "sensitivity": self.sensitivity, "delta": self.delta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscreteGaussianLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**check_json(data, cls.kind, ("sigma", "resolution_bits", "sensitivity", "delta")))
