"""``secquant.tune``: search quantization parameters for the cheapest model that meets a target.

The search has two phases, every candidate being a :class:`~secquant.QuantConfig`
converted with :func:`~secquant.quantize_model` and scored on validation data
with ``qm.predict`` (the exact integer model):

1. **uniform**: every combination of bit width, weight clipping method
   (MinMax, Percentile, MSEOptimal), input bits, input range method and
   explicit input range in the :class:`SearchSpace`;
2. **per-layer**: greedy descent from the best uniform configuration, moving
   one layer's bits (or the input's) by one step at a time while the target
   still holds and the ranking improves.

Cost is the plaintext modulus the integer model needs (``qm.modulus_needed``):
fewer bits give smaller ciphertexts and may let BFV drop CRT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from torch import nn

from secquant.errors import ConfigError, SecquantError
from secquant.nn.layers import Poly
from secquant.quant.calibration import MinMax, MSEOptimal, Percentile, RangeMethod, check_bits
from secquant.quant.config import QuantConfig
from secquant.quant.convert import calibration_array, prepare_graph, quantize_model
from secquant.quant.model import QuantizedModel
from secquant.quant.requantize_config import RequantizeConfig
from secquant.training import accuracy

__all__ = ["MaxAccuracyDrop", "MaxModulusBits", "SearchSpace", "Target", "TargetNotMetError", "Trial", "TuneResult", "tune"]


@dataclass(frozen=True)
class MaxAccuracyDrop:
    """Lose at most ``points`` percentage points of validation accuracy against float; then minimise the modulus.

    Attributes:
        points: Allowed drop in percentage points, in [0, 100].
    """

    points: float

    def __post_init__(self) -> None:
        if isinstance(self.points, bool) or not isinstance(self.points, (int, float)) or not 0 <= self.points <= 100:
            raise ConfigError(f"MaxAccuracyDrop.points must be a number of percentage points in [0, 100], got {self.points!r}")

    def meets(self, trial: Trial, float_accuracy: float) -> bool:
        """Whether ``trial`` keeps accuracy within ``points`` of ``float_accuracy`` (both fractions)."""
        return trial.ok and trial.accuracy >= float_accuracy - self.points / 100.0 - 1e-12

    def rank(self, trial: Trial) -> tuple[float, float]:
        """Sort key, best first: smallest modulus, then highest accuracy."""
        return (float(trial.modulus), -trial.accuracy)


@dataclass(frozen=True)
class MaxModulusBits:
    """Keep the modulus within ``bits`` bits; then maximise validation accuracy.

    Attributes:
        bits: Largest ``ceil(log2(modulus_needed))`` allowed, in [2, 4096].
    """

    bits: int

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 4096:
            raise ConfigError(f"MaxModulusBits.bits must be an int in [2, 4096], got {self.bits!r}")

    def meets(self, trial: Trial, float_accuracy: float) -> bool:
        """Whether the trial's modulus fits in ``bits`` bits."""
        return trial.ok and trial.modulus_bits <= self.bits

    def rank(self, trial: Trial) -> tuple[float, float]:
        """Sort key, best first: highest accuracy, then smallest modulus."""
        return (-trial.accuracy, float(trial.modulus))


Target = MaxAccuracyDrop | MaxModulusBits


@dataclass(frozen=True)
class SearchSpace:
    """What :func:`tune` tries.

    Attributes:
        bits: Uniform bit widths (weights and polynomial coefficients), each in [2, 32].
        weight_methods: Weight range estimators (clipping: Percentile, MSEOptimal).
        input_bits: Input bit widths; None means "same as bits".
        input_methods: Input range estimators (ignored where an input range is given).
        input_ranges: Explicit input ranges (lo, hi); None means "from calibration".
        requantize: Requantization choices (:class:`RequantizeConfig`, or None for
            the exact model); a requantized model's cost is its (much smaller)
            modulus, so deep models become comparable.
        per_layer: Run the greedy per-layer phase.
        max_trials: Upper bound on configurations evaluated, >= 1.
    """

    bits: tuple[int, ...] = (8, 7, 6, 5, 4, 3)
    weight_methods: tuple[RangeMethod, ...] = (MinMax(), Percentile(99.9), MSEOptimal())
    input_bits: tuple[int | None, ...] = (None,)
    input_methods: tuple[RangeMethod, ...] = (MinMax(),)
    input_ranges: tuple[tuple[float, float] | None, ...] = (None,)
    requantize: tuple[RequantizeConfig | None, ...] = (None,)
    per_layer: bool = True
    max_trials: int = 200

    def __post_init__(self) -> None:
        for name in ("bits", "weight_methods", "input_bits", "input_methods", "input_ranges", "requantize"):
            value = tuple(getattr(self, name))
            if not value:
                raise ConfigError(f"SearchSpace.{name} must not be empty")
            object.__setattr__(self, name, value)
        for b in self.bits:
            check_bits(b, "SearchSpace.bits")
        for b in self.input_bits:
            if b is not None:
                check_bits(b, "SearchSpace.input_bits")
        if any(r is not None and not isinstance(r, RequantizeConfig) for r in self.requantize):
            raise ConfigError("SearchSpace.requantize holds RequantizeConfig(...) or None")
        for m in (*self.weight_methods, *self.input_methods):
            if not isinstance(m, (MinMax, Percentile, MSEOptimal)):
                raise ConfigError(f"range methods must be MinMax(), Percentile(p) or MSEOptimal(), got {m!r}")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ConfigError(f"SearchSpace.max_trials must be an int >= 1, got {self.max_trials!r}")

    def uniform_configs(self) -> list[QuantConfig]:
        """Every phase-1 configuration (validated), most bits first."""
        out = []
        for bits in sorted(set(self.bits), reverse=True):
            for method in self.weight_methods:
                for ib in self.input_bits:
                    for rng in self.input_ranges:
                        for im in self.input_methods if rng is None else self.input_methods[:1]:
                            out.extend(QuantConfig(bits=bits, input_bits=ib, weight_method=method, input_method=im,
                                                   input_range=rng, requantize=rq) for rq in self.requantize)
        return out


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration.

    Attributes:
        config: What was tried.
        phase: ``"uniform"`` or ``"per-layer"``.
        accuracy: Validation accuracy of ``qm.predict`` in [0, 1] (NaN if it failed).
        modulus: ``qm.modulus_needed`` (0 if it failed).
        meets: Whether it meets the target.
        error: Why conversion failed, else ``""``.
    """

    config: QuantConfig
    phase: str
    accuracy: float
    modulus: int
    meets: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether conversion succeeded."""
        return not self.error

    @property
    def modulus_bits(self) -> int:
        """``ceil(log2(modulus))``."""
        return (self.modulus - 1).bit_length() if self.modulus else 0

    def describe(self) -> str:
        """Short text of the configuration: bits, per-layer bits, methods, input."""
        c = self.config
        parts = [f"bits={c.bits}"]
        if c.layer_bits:
            parts.append("layers=" + ",".join(f"{k}:{v}" for k, v in sorted(c.layer_bits.items())))
        parts.append(f"w={type(c.weight_method).__name__}")
        if c.input_bits is not None:
            parts.append(f"in_bits={c.input_bits}")
        parts.append(f"in={list(c.input_range)}" if c.input_range else f"in={type(c.input_method).__name__}")
        if c.requantize is not None:
            parts.append(f"requantize={c.requantize.target_bits}b@{c.requantize.at.value}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row."""
        return {"config": self.config.to_dict(), "phase": self.phase, "accuracy": self.accuracy,
                "modulus": str(self.modulus), "modulus_bits": self.modulus_bits, "meets": self.meets,
                "error": self.error, "describe": self.describe()}


@dataclass(frozen=True, eq=False)
class TuneResult:
    """What :func:`tune` found.

    Attributes:
        best: The chosen trial.
        model: Its integer model.
        float_accuracy: Validation accuracy of the float model, in [0, 1].
        target: The target searched for.
        trials: Every configuration tried, in order.
    """

    best: Trial
    model: QuantizedModel
    float_accuracy: float
    target: Target
    trials: tuple[Trial, ...] = field(default_factory=tuple)

    def table(self) -> str:
        """Fixed-width text table of every trial; ``*`` marks the chosen one."""
        rows = [("", "phase", "accuracy", "mod bits", "meets", "configuration")]
        for t in self.trials:
            acc = "failed" if not t.ok else f"{100 * t.accuracy:.2f}"
            rows.append(("*" if t is self.best else "", t.phase, acc, str(t.modulus_bits),
                         "yes" if t.meets else "no", t.describe() + (f" ({t.error})" if t.error else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.append(f"float accuracy {100 * self.float_accuracy:.2f}; chosen: {self.best.describe()}, "
                     f"accuracy {100 * self.best.accuracy:.2f}, modulus {self.best.modulus} ({self.best.modulus_bits} bits)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result."""
        return {"float_accuracy": self.float_accuracy, "target": repr(self.target),
                "best": self.best.to_dict(), "trials": [t.to_dict() for t in self.trials]}


class TargetNotMetError(SecquantError, ValueError):
    """No configuration tried meets the target.

    Attributes:
        trials: Every configuration tried.
    """

    def __init__(self, message: str, trials: tuple[Trial, ...]) -> None:
        super().__init__(message)
        self.trials = trials


def _split(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ConfigError(f"{what} must be a pair (inputs, labels)")
    x = np.asarray(data[0].detach().numpy() if hasattr(data[0], "detach") else data[0], dtype=np.float32)
    y = np.asarray(data[1].detach().numpy() if hasattr(data[1], "detach") else data[1]).astype(np.int64)
    if x.shape[0] == 0 or x.shape[0] != y.shape[0]:
        raise ConfigError(f"{what}: need as many labels as inputs (>0), got {x.shape[0]} and {y.shape[0]}")
    return x, y


class _Evaluator:
    """Converts and scores configurations once each, recording trials."""

    def __init__(self, model: nn.Module, calibration: np.ndarray, x: np.ndarray, y: np.ndarray,
                 target: Target, float_accuracy: float, on_trial: Callable[[Trial], None] | None) -> None:
        self.model, self.calibration, self.x, self.y = model, calibration, x, y
        self.target, self.float_accuracy, self.on_trial = target, float_accuracy, on_trial
        self.trials: list[Trial] = []
        self.seen: dict[QuantConfig, Trial] = {}

    def __call__(self, cfg: QuantConfig, phase: str) -> Trial:
        if cfg in self.seen:
            return self.seen[cfg]
        try:
            qm = quantize_model(self.model, self.calibration, config=cfg)
            trial = Trial(cfg, phase, accuracy(qm.predict, self.x, self.y), int(qm.modulus_needed))
        except SecquantError as exc:
            trial = Trial(cfg, phase, math.nan, 0, error=str(exc).splitlines()[0])
        trial = Trial(trial.config, phase, trial.accuracy, trial.modulus,
                      self.target.meets(trial, self.float_accuracy), trial.error)
        self.seen[cfg] = trial
        self.trials.append(trial)
        if self.on_trial is not None:
            self.on_trial(trial)
        return trial


def quantized_layers(model: nn.Module) -> list[str]:
    """Names of the layers whose integers depend on their bits (Linear, Conv1d, Conv2d, Poly)."""
    return [layer.name for layer in prepare_graph(model)
            if isinstance(layer.module, (nn.Linear, nn.Conv1d, nn.Conv2d, Poly))]


def _neighbours(cfg: QuantConfig, layers: list[str], lowest: int, highest: int) -> list[QuantConfig]:
    out = []
    for name in layers:
        b = cfg.bits_for(name)
        for nb in (b - 1, b + 1):
            if lowest <= nb <= highest:
                out.append(cfg.with_(layer_bits={**cfg.layer_bits, name: nb}))
    ib = cfg.effective_input_bits
    for nb in (ib - 1, ib + 1):
        if lowest <= nb <= highest:
            out.append(cfg.with_(input_bits=nb))
    return out


def tune(
    model: nn.Module,
    calibration: ArrayLike,
    validation: tuple[ArrayLike, ArrayLike],
    target: Target = MaxAccuracyDrop(1.0),
    *,
    space: SearchSpace | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Find the cheapest quantization of ``model`` that meets ``target``.

    Args:
        model: A float model ``quantize_model`` accepts (polynomial activations:
            see :func:`secquant.nn.approximate_activations`).
        calibration: Inputs of shape (n, *input_shape) that fix scales.
        validation: (inputs, int labels) scored with ``qm.predict``. Keep a
            separate test set: the search fits this one.
        target: :class:`MaxAccuracyDrop` (points below the float model's
            validation accuracy; then smallest modulus) or
            :class:`MaxModulusBits` (modulus budget; then best accuracy).
        space: What to try; :class:`SearchSpace` defaults when None.
        on_trial: Called after each evaluated configuration (progress bars).

    Returns:
        The best trial, its integer model, the float accuracy and every trial.

    Raises:
        ConfigError: invalid target, space, model or data.
        TargetNotMetError: no configuration tried meets the target (carries the trials).
    """
    if not isinstance(target, (MaxAccuracyDrop, MaxModulusBits)):
        raise ConfigError(f"target must be MaxAccuracyDrop(points) or MaxModulusBits(bits), got {target!r}")
    space = space if space is not None else SearchSpace()
    if not isinstance(space, SearchSpace):
        raise ConfigError(f"space must be a SearchSpace, got {type(space).__name__}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch nn.Module, got {type(model).__name__}")
    x, y = _split(validation, "validation")
    calib = calibration_array(calibration)
    layers = quantized_layers(model)
    was_training = model.training
    model.eval()
    try:
        float_acc = accuracy(model, x, y)
        ev = _Evaluator(model, calib, x, y, target, float_acc, on_trial)
        for cfg in space.uniform_configs()[: space.max_trials]:
            ev(cfg, "uniform")
        best = _best(ev.trials, target)
        if best is not None and space.per_layer:
            best = _descend(ev, best, layers, space, target)
    finally:
        model.train(was_training)
    if best is None:
        errors = [t.error for t in ev.trials if t.error]
        cause = f"; {len(errors)} failed to convert, e.g. {errors[0]}" if errors else ""
        raise TargetNotMetError(
            f"none of {len(ev.trials)} configurations meets {target!r} (float accuracy {100 * float_acc:.2f}%)"
            f"{cause}; widen the search space (more bits, other clipping) or relax the target",
            tuple(ev.trials),
        )
    qm = quantize_model(model, calib, config=best.config)  # deterministic: the model that was scored
    return TuneResult(best, qm, float_acc, target, tuple(ev.trials))


def _best(trials: list[Trial], target: Target) -> Trial | None:
    meeting = [t for t in trials if t.meets]
    return min(meeting, key=target.rank) if meeting else None


def _descend(ev: _Evaluator, best: Trial, layers: list[str], space: SearchSpace, target: Target) -> Trial:
    lowest, highest = min(space.bits), max(space.bits)
    while len(ev.trials) < space.max_trials:
        improved = False
        for cfg in _neighbours(best.config, layers, lowest, highest):
            if len(ev.trials) >= space.max_trials:
                break
            trial = ev(cfg, "per-layer")
            if trial.meets and target.rank(trial) < target.rank(best):
                best, improved = trial, True
        if not improved:
            break
    return best
