"""A CKKS compilation's plan: every parameter, scale, level and error bound, fixed before any key.

:class:`CKKSPlan` is what :func:`~.params.make_plan` returns: the ring, the
modulus chain, the input scale and, per stage, a :class:`StagePlan` (its level,
scales, message bound, error bound, slot layout and, for a polynomial, a
:class:`PolyPlan`).  The evaluator follows it exactly; ``to_dict`` describes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from secquant.backends.base import Mode
from secquant.backends.ckks.options import CKKSOptions
from secquant.backends.ckks.pairs import request_ciphertexts
from secquant.backends.ckks.stages import Stage
from secquant.backends.seal.galois import RotationKeys, switch_key_bytes
from secquant.backends.seal.gather import SharedGather
from secquant.backends.seal.layout import BSGSLayout
from secquant.backends.seal.privacy import (
    CircuitPrivacy,
    ckks_flood_error_factor,
    ckks_flood_sigma_factor,
    describe_ckks,
)
from secquant.backends.seal.security import estimate_security

__all__ = ["CKKSPlan", "PolyPlan", "StagePlan"]


@dataclass(frozen=True, eq=False)
class PolyPlan:
    """How a POLY stage builds its powers and combines its terms.

    Attributes:
        products: ``(i, a, b, n_primes, prime, scale)`` per power x**i >= 2 in
            build order: x**a · x**b at the level of ``n_primes`` primes, rescaled
            by ``prime`` to ``scale`` (SEAL's own double arithmetic).
        power_scales: Scale S_i of x**i, keyed by i (1: the stage's input).
        power_errors: Error bound of x**i in integer units, keyed by i.
        terms: Powers i >= 1 whose coefficient is not all zero.
        coeff_primes: Primes when the coefficients multiply (the deepest power's level).
        term_scale: ``q·Δ_out``, the scale every term A_i·x**i is brought to.
        plain_scales: Scale of the encoded A_i, ``term_scale / S_i``, keyed by i.
        period: LATENCY slot period of the values (coefficients are tiled with it).
    """

    products: tuple[tuple[int, int, int, int, int, float], ...]
    power_scales: dict[int, float]
    power_errors: dict[int, float]
    terms: tuple[int, ...]
    coeff_primes: int
    term_scale: float
    plain_scales: dict[int, float]
    period: int


@dataclass(frozen=True, eq=False)
class StagePlan:
    """A stage with its level, scales and error.

    Attributes:
        stage: The stage.
        level_primes: Primes of the ciphertext modulus when the stage starts.
        prime: The prime its rescale drops (0 for SHIFT).
        scale_in, scale_out: Δ before and after (exact as SEAL computes them).
        plain_scale: Scale of the encoded weights (AFFINE), else 0.
        message_bound: Largest message |Δ·value| the stage forms before its rescale.
        error_out: Error bound after the stage, in integer units.
        layout: Diagonal layout (LATENCY AFFINE stages), else None.
        poly: Powers and term scales (POLY stages), else None.
        gather: Client-gathered layout (LATENCY, a sparse first stage), else None.
    """

    stage: Stage
    level_primes: tuple[int, ...]
    prime: int
    scale_in: float
    scale_out: float
    plain_scale: float
    message_bound: float
    error_out: float
    layout: BSGSLayout | None = None
    poly: PolyPlan | None = None
    gather: SharedGather | None = None

    @property
    def levels(self) -> int:
        """Primes this stage drops (0 for SHIFT and the free first stage)."""
        if self.poly is not None:
            return self.stage.levels
        return 1 if self.prime else 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = {**self.stage.summary(), "primes_at_start": len(self.level_primes),
             "log2_scale_in": round(math.log2(self.scale_in), 3), "log2_scale_out": round(math.log2(self.scale_out), 3),
             "log2_message_bound": round(math.log2(max(self.message_bound, 1.0)), 3),
             "error_bound_int": self.error_out}
        if self.layout is not None:
            d["layout"] = {"n_in_pad": self.layout.period, "n_out_pad": self.layout.width,
                           "baby": self.layout.baby, "giant": self.layout.giant, "rotations": self.layout.rotations}
        if self.gather is not None:
            d["gather"] = {"period": self.gather.period, "inputs_per_output": int(self.gather.cols.shape[1]),
                           "client_ciphertexts": self.gather.chunks, "rows": int(self.gather.cols.shape[0]),
                           "rotations": len(self.gather.rotation_steps)}
        if self.poly is not None:
            d["levels"] = self.levels
            d["ciphertext_products"] = len(self.poly.products)
            d["power_error_bounds_int"] = {str(i): e for i, e in sorted(self.poly.power_errors.items())}
        return d


@dataclass(frozen=True, eq=False)
class CKKSPlan:
    """Every parameter of a CKKS compilation, fixed before any key exists.

    Attributes:
        options: What the user asked for.
        poly_degree: N.
        primes: Coefficient modulus, q0 first, the special prime last.
        scale_bits: B (w = B - 1).
        input_scale: Δ0.
        input_period: Slot period of the input (LATENCY).
        stages: Per-stage plans.
        max_abs_error: Error bound of the decoded outputs before rounding, integer units.
        reference_magnitude: The output magnitude the precision target refers to.
        output_bound: Proven bound on |output|.
        galois_steps: Steps the client makes Galois keys for (empty in THROUGHPUT): every step the
            server rotates by, or only their NAF terms (``rotation_keys.policy``).
        rounding_error: Bound on the distance the skipped requantize roundings alone put between the exact
            real-valued circuit and ``qm.forward_int`` (carried per feature; 0 without requantize ops).
        clip_possible: Some requantize op can clip; the bound then holds for inputs on which none does.
        ckks_error: CKKS's own error bound against the exact real-valued circuit (None: ``max_abs_error``).
        rotation_keys: The Galois keys and what each rotation costs with them (LATENCY), else None.
        paired_inputs: THROUGHPUT: two input features per slot (:mod:`~.pairs`), encoded at
            ``input_scale / 2``; the first stage's outputs are at ``input_scale``.
    """

    options: CKKSOptions
    poly_degree: int
    primes: tuple[int, ...]
    scale_bits: int
    input_scale: float
    input_period: int
    stages: tuple[StagePlan, ...]
    max_abs_error: float
    reference_magnitude: float
    output_bound: float
    galois_steps: tuple[int, ...] = field(default_factory=tuple)
    rounding_error: float = 0.0
    clip_possible: bool = False
    ckks_error: float | None = None
    rotation_keys: RotationKeys | None = None
    paired_inputs: bool = False

    @property
    def slots(self) -> int:
        """N/2."""
        return self.poly_degree // 2

    @property
    def input_copies(self) -> int:
        """Ciphertexts per input in LATENCY mode (the client's baby-step rotations)."""
        first = self.stages[0] if self.stages else None
        if first is not None and first.gather is not None:
            return first.gather.chunks
        if (self.options.mode is Mode.LATENCY and self.options.client_rotations and first is not None
                and first.layout is not None):
            return first.layout.baby
        return 1

    @property
    def request_scale(self) -> float:
        """The scale the client encodes inputs at: Δ0, or Δ0/2 with :attr:`paired_inputs`."""
        return self.input_scale / 2 if self.paired_inputs else self.input_scale

    @property
    def request_ciphertexts_per_batch(self) -> int:
        """THROUGHPUT: input ciphertexts per batch of N/2 inputs (one per feature, or per pair)."""
        return request_ciphertexts(self.stages[0].stage.n_in if self.stages else 0, self.paired_inputs)

    @property
    def depth(self) -> int:
        """Rescales along the circuit (primes consumed)."""
        return sum(s.levels for s in self.stages)

    @property
    def bit_sizes(self) -> list[int]:
        """Bit size of every prime."""
        return [p.bit_length() for p in self.primes]

    @property
    def total_bits(self) -> int:
        """log2 of the whole coefficient modulus (what the security table limits)."""
        return sum(self.bit_sizes)

    @property
    def max_abs_error_int(self) -> int:
        """Bound on |round(decoded) - exact| for every output integer."""
        return math.floor(self.max_abs_error + 0.5)

    @property
    def output_scale(self) -> float:
        """Δ of the result."""
        return self.stages[-1].scale_out if self.stages else self.input_scale

    def sizes(self) -> dict[str, int]:
        """Uncompressed sizes of keys and ciphertexts (8 bytes per coefficient per prime).

        SEAL's zstd and the seeded (secret-key) encryption make the wire smaller:
        fresh inputs and keys travel at about half these sizes.
        """
        n, k_all = self.poly_degree, len(self.primes)
        k_data = k_all - 1
        k_out = k_data - self.depth
        switch_key = switch_key_bytes(n, k_all)
        per_input = self.input_copies if self.options.mode is Mode.LATENCY else 1
        return {
            "fresh_ciphertext": 2 * n * k_data * 8,
            "output_ciphertext": 2 * n * k_out * 8,
            "public_key": 2 * n * k_all * 8,
            "relin_keys": switch_key,
            "galois_keys": switch_key * (len(self.galois_steps) + self.paired_inputs),
            "request_ciphertexts_per_input" if self.options.mode is Mode.LATENCY else "request_ciphertexts_per_batch":
                per_input if self.options.mode is Mode.LATENCY else self.request_ciphertexts_per_batch,
        }

    def server_rotations(self) -> list[int]:
        """The step of every rotation the server makes for one LATENCY input (the client's baby steps excluded)."""
        steps: list[int] = []
        for k, s in enumerate(self.stages):
            if s.gather is not None:
                steps += s.gather.rotation_steps
            elif s.layout is not None:
                client = k == 0 and self.input_copies > 1
                steps += [r for r in s.layout.rotation_steps if not (client and r < s.layout.baby)]
        return steps

    def key_switches(self) -> int:
        """Key switches of those rotations under the plan's Galois keys (SEAL composes a missing step)."""
        steps = self.server_rotations()
        return self.rotation_keys.total(steps) if self.rotation_keys is not None else len(steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of every choice."""
        n_rot = len(self.server_rotations())
        keys = self.rotation_keys
        key_bytes = switch_key_bytes(self.poly_degree, len(self.primes))
        return {
            "scheme": "ckks",
            "mode": self.options.mode.value,
            "poly_degree": self.poly_degree,
            "slots": self.slots,
            "coeff_modulus_bits": self.bit_sizes,
            "coeff_modulus_total_bits": self.total_bits,
            "primes": [str(p) for p in self.primes],
            "scale_bits": self.scale_bits,
            "log2_input_scale": math.log2(self.input_scale),
            "log2_output_scale": math.log2(self.output_scale),
            "depth": self.depth,
            "security_bits": estimate_security(self.poly_degree, self.total_bits),
            "security_requested": self.options.security,
            "precision_bits_target": self.options.precision_bits,
            "max_abs_error": self.max_abs_error,
            "max_abs_error_int": self.max_abs_error_int,
            "error_unit": "output integers (qm.forward_int units); divide by qm.output_scale for scores",
            "relative_error_bound": self.max_abs_error / max(self.reference_magnitude, 1.0),
            "reference_output_magnitude": self.reference_magnitude,
            "output_bound": self.output_bound,
            "q0_headroom_bits": math.log2(self.primes[0] / 2) - math.log2(
                self.output_scale * self.output_bound + self.output_scale * self.max_abs_error),
            "galois_steps": list(self.galois_steps),
            "input_ciphertexts_per_input": self.input_copies if self.options.mode is Mode.LATENCY else None,
            "rotations_per_input": n_rot,
            "key_switches_per_input": self.key_switches(),
            "galois_key_policy": keys.summary(key_bytes) if keys is not None and keys.steps else None,
            "packing": ("one input per ciphertext, replicated over slots; hybrid diagonal BSGS matmul"
                        + ("; first stage gathered by the client (sparsity pattern only)"
                           if self.stages and self.stages[0].gather is not None else "")
                        if self.options.mode is Mode.LATENCY else
                        "inputs across slots, two features per ciphertext (real and imaginary parts; one "
                        "conjugation per first-stage output)" if self.paired_inputs else
                        "inputs across slots, one ciphertext per feature (CryptoNets)"),
            "paired_inputs": self.paired_inputs,
            "paired_inputs_public_bytes_uncompressed": key_bytes if self.paired_inputs else 0,  # the conjugation key
            "stages": [s.summary() for s in self.stages],
            "sizes_bytes_uncompressed": self.sizes(),
            "error_model": "Cheon-Kim-Kim-Song 2017 Lemmas 1-3, six-sigma canonical-embedding bounds (sigma=3.2, ternary secret)",
            "circuit_privacy": describe_ckks(self.options.circuit_privacy, self.poly_degree,
                                             self.options.flood_security_bits, self.options.flood_queries,
                                             flood_sigma(self, self.output_scale)),
            **self._requantize_dict(),
        }

    def _requantize_dict(self) -> dict[str, Any]:
        folded = [list(s.stage.names) for s in self.stages if s.stage.rounding]
        if not folded and not self.clip_possible:
            return {}
        return {"requantize": {
            "how": "each requantize is a multiplication by M/2**s folded into the affine stage next to it (no level); "
                   "CKKS does not round: max_abs_error includes at most 1/2 per requantize, carried through later stages",
            "stages_with_requantize": folded,
            "rounding_only_error_bound": self.rounding_error,
            "ckks_only_error_bound": self.ckks_error if self.ckks_error is not None else self.max_abs_error,
            "error_bound_note": ("max_abs_error carries every skipped rounding through the later stages together "
                                 "with the CKKS noise (worst case: every rounding aligned with every weight's sign); "
                                 "the two parts alone are stated for comparison"),
            "clip_possible": self.clip_possible,
            "bound_holds_for": ("inputs on which no requantize op clips (an input beyond the calibration range "
                                "of a requantize op is not covered)" if self.clip_possible else "every input"),
        }}


def flood_sigma(plan: CKKSPlan, scale: float) -> float:
    """Std per coefficient of the CKKS flooding noise of ``plan`` for a result at ``scale`` (0 without FLOOD).

    The plan's slot error bound before flooding is ``E_slot = max_abs_error / (1 + F)``
    (``max_abs_error`` includes the flood's own error ``F * E_slot``), in output steps;
    its coefficient bound is ``E = E_slot * scale / sqrt(N/2)`` (see
    :func:`~secquant.backends.seal.privacy.ckks_flood_error_factor`), and the
    deviation ``E * ckks_flood_sigma_factor(s, Q)``.
    """
    opts = plan.options
    if opts.circuit_privacy is not CircuitPrivacy.FLOOD:
        return 0.0
    e_slot = plan.max_abs_error / (1.0 + ckks_flood_error_factor(opts.flood_security_bits, opts.flood_queries))
    coefficient = e_slot * scale / math.sqrt(plan.poly_degree / 2)
    return coefficient * ckks_flood_sigma_factor(opts.flood_security_bits, opts.flood_queries)
