"""Release policies on the service: what a client gets of each result, applied by the server.

The policies are the types of :mod:`secquant.dp.release` (one definition for
the service, the membership audit and the extraction audit).  The service
applies them to integer outputs, in whole output steps (one step is
``1 / output_scale`` logits):

==========================  =========================  =====================================================
``--release``               policy                     where it is applied
==========================  =========================  =====================================================
``full``                    ``FullLogits``             nothing to do
``round:K``                 ``RoundedLogits(-K)``      plain only: outputs rounded to multiples of 2**K steps
``gaussian:SIGMA[:DELTA]``  ``DiscreteGaussianLogits`` plain; the encrypted schemes add it to their
                            (σ steps, grid 1 step)     encrypted outputs (:mod:`secquant.backends.release`):
                                                       Paillier ``(1+n)**noise`` before packing, BFV the
                                                       same integer mod every CRT prime, CKKS at the output
                                                       scale; each widens its output window by the noise
                                                       bound
==========================  =========================  =====================================================

No encrypted scheme can round: a ciphertext cannot drop low bits without a
comparison circuit, so ``round:K`` with Paillier, BFV or CKKS raises
:class:`~secquant.protocol.errors.ReleaseUnsupportedError` at start.  The
policy and its (ε, δ) per query are part of the service spec, so a client
knows what it gets before it sends anything.

Per-token privacy accounting (:mod:`~secquant.protocol.inference.quotas`)
uses zero-concentrated DP: one released input of ``k`` outputs costs
``rho = k·Δ²/(2σ²)`` (discrete Gaussian, Canonne–Kamath–Steinke 2020, Thm 4),
costs add up, and ``ε(δ) = ρ + 2·sqrt(ρ·ln(1/δ))`` (Bun–Steinke 2016, Prop 1.3).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from secquant.errors import ConfigError
from secquant.protocol.errors import ReleaseUnsupportedError

__all__ = ["ServiceRelease", "parse_release", "zcdp_budget", "zcdp_epsilon"]

#: Schemes whose server adds release noise to ciphertexts (and cannot round them).
_ENCRYPTED = {"paillier": "Paillier", "bfv": "BFV", "ckks": "CKKS"}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE]-?\d+)?"


def parse_release(text: str) -> Any:
    """A policy from ``secquant serve --release``: ``full``, ``round:K``, ``gaussian:SIGMA[:DELTA]``.

    ``round:K`` rounds integer outputs (half up) to multiples of ``2**K``
    steps; ``gaussian:SIGMA`` adds discrete Gaussian noise of σ output steps
    (δ of the privacy statement 1e-5 unless given).  Any label of
    :func:`secquant.dp.release.parse_policy` is accepted too.

    Raises:
        ConfigError: the text names no policy.
    """
    from secquant.dp.release import DiscreteGaussianLogits, FullLogits, RoundedLogits, parse_policy

    t = str(text).strip().lower()
    if t in ("full", "none"):
        return FullLogits()
    m = re.fullmatch(r"round:(\d+)", t)
    if m:
        return RoundedLogits(-int(m.group(1)))
    m = re.fullmatch(rf"gaussian:({_NUMBER})(?::({_NUMBER}))?", t)
    if m:
        delta = float(m.group(2)) if m.group(2) else 1e-5
        return DiscreteGaussianLogits(float(m.group(1)), resolution_bits=0, delta=delta)
    try:
        return parse_policy(t)
    except ConfigError:
        raise ConfigError(f"unknown release policy {text!r}; use full, round:K (drop K low bits of the integer "
                          "logits) or gaussian:SIGMA[:DELTA] (σ in output steps)") from None


def zcdp_epsilon(rho: float, delta: float) -> float:
    """ε at δ of ρ-zCDP: ``ρ + 2·sqrt(ρ·ln(1/δ))`` (Bun–Steinke 2016, Prop 1.3)."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)) if rho > 0 else 0.0


def zcdp_budget(epsilon: float, delta: float) -> float:
    """The largest ρ whose :func:`zcdp_epsilon` at ``delta`` is at most ``epsilon``."""
    log = math.log(1.0 / delta)
    return (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2


@dataclass(frozen=True)
class ServiceRelease:
    """A release policy bound to a scheme and a model's output width.

    Attributes:
        policy: A :mod:`secquant.dp.release` policy.
        scheme: The served scheme's value.
        outputs: Output coordinates per input (k).
        output_bound: Proven bound on |output| (integer steps).
        modulus: The model's modulus (plain backend: results live mod it).

    Raises:
        ReleaseUnsupportedError: the scheme cannot apply the policy to its result.
    """

    policy: Any
    scheme: str
    outputs: int
    output_bound: int = 0
    modulus: int = 0

    def __post_init__(self) -> None:
        from secquant.dp.release import RELEASE_POLICY_TYPES, FullLogits, ReleaseForm

        if not isinstance(self.policy, RELEASE_POLICY_TYPES):
            raise ConfigError(f"release policy must be one of secquant.dp.release's types, got {self.policy!r}")
        if isinstance(self.policy, FullLogits):
            return
        policy: Any = self.policy
        if policy.form is not ReleaseForm.LOGITS or getattr(policy, "resolution_bits", 0) > 0:
            raise ReleaseUnsupportedError(
                f"{policy.label} releases {policy.form.value} or a grid finer than one output step; the "
                "service releases integer logits: use full, round:K or gaussian:SIGMA")
        if self.scheme in _ENCRYPTED and not self.noisy:
            raise ReleaseUnsupportedError(
                f"{_ENCRYPTED[self.scheme]} cannot apply {policy.label}: it only adds, so it cannot round a "
                "ciphertext; use gaussian:SIGMA or full, or the plain backend")
        if self.scheme == "plain" and 2 * (self.output_bound + self.widening) >= self.modulus:
            raise ReleaseUnsupportedError(
                f"{policy.label} moves outputs by up to {self.widening} steps, past the modulus window of this "
                f"model (|output| <= {self.output_bound}, modulus {self.modulus}); serve a copy with room, "
                "qm.with_modulus(larger), or use less noise")

    @property
    def noisy(self) -> bool:
        """Whether the policy adds noise (and so spends privacy)."""
        return hasattr(self.policy, "grid_sigma")

    @property
    def widening(self) -> int:
        """Largest amount |output| can grow by (noise bound, or half a rounding step)."""
        from secquant.backends.release import noise_bound

        if self.noisy:
            return noise_bound(self.policy)
        bits = -int(getattr(self.policy, "bits", 0))
        return 1 << (bits - 1) if bits > 0 else 0

    @property
    def rho_per_input(self) -> float:
        """zCDP cost of releasing one input's ``outputs`` coordinates (0 without noise)."""
        if not self.noisy:
            return 0.0
        return self.outputs * float(self.policy.sensitivity) ** 2 / (2.0 * float(self.policy.grid_sigma) ** 2)

    def epsilon_per_query(self) -> tuple[float, float]:
        """(ε, δ) of one released input: dp-accounting's PLD if installed, else the zCDP conversion."""
        if not self.noisy:
            return math.inf, 0.0
        try:
            return self.policy.privacy(self.outputs)
        except ImportError:
            return zcdp_epsilon(self.rho_per_input, self.policy.delta), float(self.policy.delta)

    def compile_options(self) -> dict[str, Any]:
        """Options the backend needs (an encrypted backend adds the noise itself)."""
        return {"release": self.policy.to_json()} if self.scheme in _ENCRYPTED and self.noisy else {}

    def describe(self) -> dict[str, Any]:
        """JSON for the service spec and ``/v1/info``: policy, where it is applied, (ε, δ) per query."""
        out: dict[str, Any] = {"policy": self.policy.to_json(), "label": self.policy.label, "outputs": self.outputs}
        if self.policy.label == "full":
            out["applied"] = "nothing: exact logits"
            return out
        out["applied"] = ("by the server to the encrypted outputs, before re-randomization or flooding"
                          if self.scheme in _ENCRYPTED else "by the server to the result before it is returned")
        out["max_change_steps"] = self.widening
        if self.noisy:
            eps, delta = self.epsilon_per_query()
            out.update({"epsilon_per_query": eps, "delta": delta, "rho_per_query": self.rho_per_input,
                        "accounting": "per token: zCDP, rho adds up, eps = rho + 2 sqrt(rho ln(1/delta))"})
        return out

    def apply_plain(self, payload: bytes) -> bytes:
        """Apply the policy to a plain backend result (values mod the model's modulus).

        Raises:
            ConfigError: not a plain result.
        """
        from secquant.artifact import encode_artifact, read_artifact
        from secquant.dp.samplers import secure_generator
        from secquant.errors import ArtifactError
        from secquant.quant.primitives import centered_lift

        try:
            _, _, arrays = read_artifact(payload, "secquant.PlainBatch")
        except ArtifactError as exc:
            raise ConfigError(f"malformed plain result: {exc}") from exc
        values = centered_lift(arrays["values"], self.modulus)
        released = self.policy.apply(np.asarray(values, dtype=object), secure_generator())
        return encode_artifact("secquant.PlainBatch", 1, {},
                               {"values": np.mod(np.asarray(released, dtype=object), self.modulus)})
