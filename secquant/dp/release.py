"""Release policies: what a client sees of a model's outputs (one definition for every user).

The inference service publishes one of these in its client spec, the
membership audit attacks what they release, and the extraction audit measures
how many queries they let an attacker steal the model with.

A policy's parameters are in **units** of the values it is given: logits when
:meth:`release` gets float logits, integer steps of the output when
:meth:`apply` gets the integer outputs of ``QuantizedModel.forward_int`` (one
step is ``1 / output_scale`` logits).  A grid of ``2**-resolution_bits``
units is where rounded and noisy releases live; :meth:`apply` needs a whole
number of steps (``resolution_bits <= 0``).  :meth:`scaled` re-expresses a
policy for values whose unit is ``2**-bits`` of the old one (e.g. a policy in
logits for integer outputs with about ``2**bits`` steps per logit); it never
changes the (ε, δ) of a noisy policy.

* :class:`FullLogits` (``full``): the outputs as they are.
* :class:`RoundedLogits` (``lround<k>``): rounded to multiples of ``2**-k`` units
  (half up); for integer outputs ``k <= 0`` drops ``-k`` low bits.
* :class:`DiscreteGaussianLogits` (``dgauss<sigma>``): on the grid, plus exact
  discrete Gaussian noise of σ units, fresh per query; :meth:`~DiscreteGaussianLogits.privacy`
  gives its (ε, δ) per query from the accountant.
* :class:`RoundedProbabilities` (``round<k>``): softmax probabilities rounded to
  ``2**-k`` (float logits only: a server cannot take a softmax of ciphertexts).
* :class:`TopLabel` (``top1``): the predicted class only.

Every policy has ``to_json()``; :func:`policy_from_json` and
:func:`parse_policy` read them back.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

try:  # the dp package is where the samplers live from issue 13 on
    from secquant.dp.samplers import MAX_DISCRETE_GAUSSIAN_SIGMA, sample_discrete_gaussian
except ImportError:  # pragma: no cover - until the move lands
    from secquant.audit.samplers import MAX_DISCRETE_GAUSSIAN_SIGMA, sample_discrete_gaussian

__all__ = [
    "RELEASE_POLICY_TYPES",
    "DiscreteGaussianLogits",
    "FullLogits",
    "ReleaseForm",
    "ReleaseKind",
    "ReleasePolicy",
    "RoundedLogits",
    "RoundedProbabilities",
    "TopLabel",
    "parse_policy",
    "policy_from_json",
]


class ReleaseKind(enum.Enum):
    """Which policy; the ``kind`` of its JSON form."""

    FULL = "full"
    ROUNDED_LOGITS = "rounded_logits"
    DISCRETE_GAUSSIAN = "discrete_gaussian"
    ROUNDED_PROBABILITIES = "rounded_probabilities"
    TOP_LABEL = "top_label"


class ReleaseForm(enum.Enum):
    """What the client receives: scores in the input's units, probabilities, or class labels."""

    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LABELS = "labels"


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ConfigError(f"{what} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


def _floats(values: Any) -> NDArray[np.float64]:
    z = np.asarray(values, dtype=np.float64)
    if z.ndim < 1 or not np.all(np.isfinite(z)):
        raise ConfigError(f"scores must be a finite array with a class axis, got shape {z.shape}")
    return z


def _ints(values: Any) -> NDArray[np.int64]:
    y = np.asarray(values)
    if y.dtype == object:
        ints = [int(v) for v in y.reshape(-1)]
        if any(not -(2**62) <= v < 2**62 for v in ints):
            raise ConfigError("integer outputs beyond ±2**62 cannot be released; use a smaller modulus")
        return np.asarray(ints, dtype=np.int64).reshape(y.shape)
    if y.dtype.kind not in "iu" or y.ndim < 1:
        raise ConfigError(f"apply() takes the integer outputs of forward_int, got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _round_to_grid(y: NDArray[np.int64], shift: int) -> NDArray[np.int64]:
    """``y`` rounded (half up) to a multiple of ``2**shift``, in units of ``2**shift``."""
    return y if shift == 0 else (y + (1 << (shift - 1))) >> shift


def _whole_steps(policy: Any) -> int:
    """Grid exponent in steps for :meth:`apply`; refuses fractional steps."""
    r = int(policy.resolution_bits)
    if r > 0:
        raise ConfigError(
            f"{policy.label} has a grid of 2**-{r} units, finer than one integer step; express it in steps "
            f"first with policy.scaled(bits), bits ~ log2(output_scale) (the extraction audit does this)"
        )
    return -r


def _check_json(data: Any, kind: ReleaseKind, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("kind") != kind.value:
        raise ConfigError(f"expected a release policy of kind {kind.value!r}, got {data!r}")
    extra = set(data) - {"kind", *fields}
    if extra:
        raise ConfigError(f"release policy {kind.value!r} has unknown fields {sorted(extra)}")
    return {k: data[k] for k in fields if k in data}


@dataclass(frozen=True)
class FullLogits:
    """Release the outputs as they are (no protection; the baseline)."""

    kind: ClassVar[ReleaseKind] = ReleaseKind.FULL
    form: ClassVar[ReleaseForm] = ReleaseForm.LOGITS

    @property
    def label(self) -> str:
        """Short name for tables and the CLI: ``full``."""
        return "full"

    def apply(self, int_logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """The integer outputs unchanged (int64)."""
        return _ints(int_logits).copy()

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """The float scores unchanged."""
        return _floats(logits)

    def scaled(self, bits: int) -> FullLogits:
        """The same policy (it has no parameters in units)."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for a client spec."""
        return {"kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FullLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**_check_json(data, cls.kind, ()))


@dataclass(frozen=True)
class RoundedLogits:
    """Release the outputs rounded (half up) to multiples of ``2**-bits`` units.

    Attributes:
        bits: Fractional bits kept, in [-62, 24]: 4 keeps 1/16 logit for float
            logits; for integer outputs, ``bits = -k`` drops the ``k`` low bits.

    Raises:
        ConfigError: ``bits`` out of range.
    """

    bits: int = 4
    kind: ClassVar[ReleaseKind] = ReleaseKind.ROUNDED_LOGITS
    form: ClassVar[ReleaseForm] = ReleaseForm.LOGITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _int(self.bits, "RoundedLogits.bits", -62, 24))

    @property
    def resolution_bits(self) -> int:
        """The grid is ``2**-resolution_bits`` units (same as ``bits``)."""
        return self.bits

    @property
    def label(self) -> str:
        """Short name, e.g. ``lround4``."""
        return f"lround{self.bits}"

    def apply(self, int_logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """Integer outputs rounded to multiples of ``2**-bits`` steps (``bits <= 0``).

        Raises:
            ConfigError: ``bits > 0`` (finer than a step), or non-integer input.
        """
        shift = _whole_steps(self)
        return _round_to_grid(_ints(int_logits), shift) << shift

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """Float scores rounded to multiples of ``2**-bits``."""
        scale = 2.0 ** self.bits
        return np.floor(_floats(logits) * scale + 0.5) / scale

    def scaled(self, bits: int) -> RoundedLogits:
        """The policy for values whose unit is ``2**-bits`` of this one's."""
        return RoundedLogits(self.bits - int(bits))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value, "bits": self.bits}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundedLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**_check_json(data, cls.kind, ("bits",)))


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
        object.__setattr__(self, "resolution_bits", _int(self.resolution_bits, "resolution_bits", -62, 24))
        object.__setattr__(self, "sensitivity", _int(self.sensitivity, "sensitivity", 1, 2**40))
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
        shift = _whole_steps(self)
        grid = _round_to_grid(_ints(int_logits), shift)
        return (grid + self._noise(grid.shape, rng)) << shift

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """Float scores on the grid plus noise, in the scores' units."""
        scale = 2.0 ** self.resolution_bits
        grid = np.floor(_floats(logits) * scale + 0.5).astype(np.int64)
        return (grid + self._noise(grid.shape, rng)) / scale

    def scaled(self, bits: int) -> DiscreteGaussianLogits:
        """The policy for values whose unit is ``2**-bits`` of this one's; same grid σ, same (ε, δ)."""
        b = int(bits)
        return DiscreteGaussianLogits(self.sigma * 2.0**b, self.resolution_bits - b, self.sensitivity, self.delta)

    def privacy(self) -> tuple[float, float]:
        """(ε, δ) of one query of one coordinate, from dp-accounting's exact discrete Gaussian privacy loss.

        A query of ``k`` coordinates that may all move by Δ composes ``k`` times
        (the accountant's composition, not ``k·ε``, is the tight figure).

        Raises:
            ImportError: dp-accounting (the ``audit`` extra) is missing.
        """
        try:
            from secquant.dp.accounting import discrete_gaussian_epsilon
        except ImportError:  # pragma: no cover - until the move lands
            from secquant.audit.accounting import discrete_gaussian_epsilon
        return discrete_gaussian_epsilon(self.grid_sigma, self.sensitivity, self.delta), float(self.delta)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (parameters only; ε comes from :meth:`privacy`)."""
        return {"kind": self.kind.value, "sigma": self.sigma, "resolution_bits": self.resolution_bits,
                "sensitivity": self.sensitivity, "delta": self.delta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscreteGaussianLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**_check_json(data, cls.kind, ("sigma", "resolution_bits", "sensitivity", "delta")))


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class RoundedProbabilities:
    """Release softmax probabilities rounded to multiples of ``2**-bits`` (a plaintext API's policy).

    Attributes:
        bits: Bits per probability, in [1, 24].

    Raises:
        ConfigError: ``bits`` out of range.
    """

    bits: int = 4
    kind: ClassVar[ReleaseKind] = ReleaseKind.ROUNDED_PROBABILITIES
    form: ClassVar[ReleaseForm] = ReleaseForm.PROBABILITIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _int(self.bits, "RoundedProbabilities.bits", 1, 24))

    @property
    def label(self) -> str:
        """Short name, e.g. ``round4``."""
        return f"round{self.bits}"

    def apply(self, int_logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """Refused: probabilities need the output scale and a softmax no server computes on ciphertexts.

        Raises:
            ConfigError: always; use :meth:`release` on dequantized logits.
        """
        raise ConfigError(f"{self.label} releases probabilities; call release() on float logits (qm.predict), "
                          "not apply() on integer outputs")

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """Probabilities rounded to the nearest multiple of ``2**-bits``."""
        step = 2.0 ** self.bits
        return np.floor(_softmax(_floats(logits)) * step + 0.5) / step

    def scaled(self, bits: int) -> RoundedProbabilities:
        """The same policy (probabilities have no units)."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value, "bits": self.bits}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundedProbabilities:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**_check_json(data, cls.kind, ("bits",)))


@dataclass(frozen=True)
class TopLabel:
    """Release only the predicted class (argmax; ties go to the lowest index)."""

    kind: ClassVar[ReleaseKind] = ReleaseKind.TOP_LABEL
    form: ClassVar[ReleaseForm] = ReleaseForm.LABELS

    @property
    def label(self) -> str:
        """Short name: ``top1``."""
        return "top1"

    def apply(self, int_logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """The predicted class of each row of integer outputs."""
        return np.argmax(_ints(int_logits), axis=-1).astype(np.int64)

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """The predicted class of each row of float scores."""
        return np.argmax(_floats(logits), axis=-1).astype(np.int64)

    def scaled(self, bits: int) -> TopLabel:
        """The same policy."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopLabel:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**_check_json(data, cls.kind, ()))


ReleasePolicy = Union[FullLogits, RoundedLogits, DiscreteGaussianLogits, RoundedProbabilities, TopLabel]
#: For ``isinstance`` checks.
RELEASE_POLICY_TYPES: tuple[type, ...] = (FullLogits, RoundedLogits, DiscreteGaussianLogits, RoundedProbabilities, TopLabel)
_BY_KIND = {t.kind: t for t in RELEASE_POLICY_TYPES}  # type: ignore[attr-defined]


def policy_from_json(data: Any) -> ReleasePolicy:
    """Read any policy from its ``to_json()`` form.

    Raises:
        ConfigError: not a policy, unknown kind or fields, or a value out of range.
    """
    kinds = [k.value for k in ReleaseKind]
    if not isinstance(data, dict) or data.get("kind") not in kinds:
        raise ConfigError(f"not a release policy: {data!r}; its 'kind' must be one of {kinds}")
    return _BY_KIND[ReleaseKind(data["kind"])].from_json(data)  # type: ignore[no-any-return]


_NUMBER = r"([0-9]*\.?[0-9]+(?:e-?\d+)?)"


def parse_policy(text: str) -> ReleasePolicy:
    """Read a policy from its label: ``full``, ``lround<k>``, ``dgauss<sigma>``, ``round<k>``, ``top1``.

    ``dgauss`` uses the default grid (``2**-6`` units), sensitivity 1 and δ = 1e-5.

    Raises:
        ConfigError: the text names no policy.
    """
    t = str(text).strip().lower()
    if t == "full":
        return FullLogits()
    if t in ("top1", "label"):
        return TopLabel()
    m = re.fullmatch(r"round:?(\d+)", t)
    if m:
        return RoundedProbabilities(int(m.group(1)))
    m = re.fullmatch(r"lround:?(-?\d+)", t)
    if m:
        return RoundedLogits(int(m.group(1)))
    m = re.fullmatch(rf"dgauss:?{_NUMBER}", t)
    if m:
        return DiscreteGaussianLogits(float(m.group(1)))
    raise ConfigError(f"unknown release policy {text!r}; use full, lround<k> (logits to k fractional bits), "
                      "dgauss<sigma> (e.g. dgauss0.5), round<k> (probabilities) or top1")
