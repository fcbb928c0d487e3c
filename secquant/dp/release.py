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

import re
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
from secquant.dp.release_noise import DiscreteGaussianLogits
from secquant.errors import ConfigError

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
        return int_outputs(int_logits).copy()

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """The float scores unchanged."""
        return float_scores(logits)

    def scaled(self, bits: int) -> FullLogits:
        """The same policy (it has no parameters in units)."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for a client spec."""
        return {"kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FullLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**check_json(data, cls.kind, ()))


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
        object.__setattr__(self, "bits", int_field(self.bits, "RoundedLogits.bits", -62, 24))

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
        shift = whole_steps(self)
        return round_to_grid(int_outputs(int_logits), shift) << shift

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.float64]:
        """Float scores rounded to multiples of ``2**-bits``."""
        scale = 2.0 ** self.bits
        return np.floor(float_scores(logits) * scale + 0.5) / scale

    def scaled(self, bits: int) -> RoundedLogits:
        """The policy for values whose unit is ``2**-bits`` of this one's."""
        return RoundedLogits(self.bits - int(bits))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value, "bits": self.bits}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundedLogits:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**check_json(data, cls.kind, ("bits",)))


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
        object.__setattr__(self, "bits", int_field(self.bits, "RoundedProbabilities.bits", 1, 24))

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
        return np.floor(_softmax(float_scores(logits)) * step + 0.5) / step

    def scaled(self, bits: int) -> RoundedProbabilities:
        """The same policy (probabilities have no units)."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value, "bits": self.bits}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundedProbabilities:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**check_json(data, cls.kind, ("bits",)))


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
        return np.argmax(int_outputs(int_logits), axis=-1).astype(np.int64)

    def release(self, logits: Any, rng: np.random.Generator) -> NDArray[np.int64]:
        """The predicted class of each row of float scores."""
        return np.argmax(float_scores(logits), axis=-1).astype(np.int64)

    def scaled(self, bits: int) -> TopLabel:
        """The same policy."""
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopLabel:
        """Inverse of :meth:`to_json`. Raises ConfigError on anything else."""
        return cls(**check_json(data, cls.kind, ()))


ReleasePolicy = FullLogits | RoundedLogits | DiscreteGaussianLogits | RoundedProbabilities | TopLabel
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
