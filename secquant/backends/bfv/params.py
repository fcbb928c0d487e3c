"""BFV parameter choice from the bounds: plaintext (CRT) primes, ring degree, modulus chain.

Everything here is key-less arithmetic on the plan and ``qm.bounds()``:

* **Plaintext primes.** The product T of the primes t_i (each t_i = 1 mod 2N,
  so slots batch) must hold every layer: ``T >= qm.modulus_needed``.  One prime
  holds at most 60 bits; past that the circuit runs once per prime and the
  results recombine by CRT (exact, Python ints).
* **Noise.** The data part of the coefficient modulus is sized so that the
  estimate of :mod:`~secquant.backends.bfv.noise` ends at least ``margin``
  bits above zero.
* **Security.** The total coefficient modulus (data primes plus SEAL's special
  prime) stays within the HomomorphicEncryption.org bound for N at the
  requested level (:mod:`~secquant.backends.seal.security`).
* **Cost.** Among the feasible (N, prime size) pairs the cheapest is chosen:
  per slot ``k * (L + 1)`` in throughput mode (times the ``ceil(B / N) * N``
  slots of a call of B = ``options.inputs_per_call`` inputs, when given),
  ``k * N * (L + 1)**2`` in latency mode (rotations, i.e. key switches,
  dominate), k primes, L data primes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.bfv.layout import LatencyLayout, latency_layout
from secquant.backends.bfv.noise import data_bits_needed, noise_trace
from secquant.backends.bfv.options import POLY_DEGREES, BFVOptions
from secquant.backends.bfv.plan import Stage
from secquant.backends.release import check_modulus_with_noise, modulus_with_noise
from secquant.backends.seal.ciphertext import Transfer
from secquant.backends.seal.layout import GatherLayout
from secquant.backends.seal.primes import is_prime, primes_1_mod
from secquant.backends.seal.privacy import CircuitPrivacy, flood_reserve_bits
from secquant.backends.seal.security import estimate_security, max_coeff_modulus_bits
from secquant.errors import ParameterError
from secquant.quant.model import QuantizedModel

__all__ = ["MAX_PRIME_BITS", "MIN_PRIME_BITS", "BFVParameters", "check_plain_modulus", "choose_parameters",
           "crt_primes", "split_data_bits"]

#: SEAL's largest prime, for plaintext and coefficient primes alike.
MAX_PRIME_BITS = 60
#: Smallest coefficient prime made.
MIN_PRIME_BITS = 20


@dataclass(frozen=True)
class BFVParameters:
    """One choice of BFV parameters for a plan.

    Attributes:
        mode: Slot layout.
        poly_degree: N (slots per ciphertext).
        coeff_bits: Bit sizes of the coefficient primes; the last is SEAL's special prime.
        plain_moduli: CRT primes t_i, each = 1 mod 2N.
        security: Level the user asked for (128, 192 or 256).
        margin: Bits of estimated noise budget required at the end: the user's
            margin, plus :func:`~secquant.backends.seal.privacy.flood_reserve_bits`
            under ``CircuitPrivacy.FLOOD`` (the flood spends them).
        trace: Estimated budget per stage for the largest t_i.
        layout: Latency-mode layout (None in throughput mode).

    Raises:
        ParameterError: a plaintext modulus is not a prime = 1 mod 2N.
    """

    mode: Mode
    poly_degree: int
    coeff_bits: tuple[int, ...]
    plain_moduli: tuple[int, ...]
    security: int
    margin: int
    trace: tuple[dict[str, Any], ...] = field(repr=False)
    layout: LatencyLayout | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for t in self.plain_moduli:
            if (t - 1) % (2 * self.poly_degree) or not is_prime(t):
                raise ParameterError(f"plain modulus {t} is not a prime = 1 mod 2N={2 * self.poly_degree}")

    @property
    def total_plain_modulus(self) -> int:
        """Product of the CRT primes."""
        return math.prod(self.plain_moduli)

    @property
    def levels(self) -> tuple[int, ...]:
        """Data primes kept after each stage (modulus switching schedule)."""
        return tuple(int(s["data_primes"]) for s in self.trace[1:])

    @property
    def final_budget(self) -> float:
        """Estimated noise budget left after the last stage (bits)."""
        return float(self.trace[-1]["budget_bits"])

    @property
    def gather(self) -> GatherLayout | None:
        """Latency mode: the client's gathering of the first stage, or None."""
        return self.layout.gather(self.poly_degree) if self.layout is not None else None

    @property
    def slots(self) -> int:
        """Inputs per ciphertext: N in throughput mode, 2 in latency mode (one per row), 1 when gathered."""
        if self.mode is Mode.THROUGHPUT:
            return self.poly_degree
        return self.layout.inputs_per_ciphertext if self.layout else 2

    @property
    def _gathered(self) -> bool:
        return self.layout is not None and self.layout.gather_cols is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (sizes are filled in by the backend)."""
        total = sum(self.coeff_bits)
        period = self.layout.period if self.layout else 0
        return {
            "scheme": "bfv",
            "mode": self.mode.value,
            "packing": ("throughput: one ciphertext per feature, one input per slot (N inputs per batch)"
                        if self.mode is Mode.THROUGHPUT else
                        f"latency: one input per ciphertext, repeated with period {period}; "
                        + ("first stage from client-gathered blocks, then " if self._gathered else "")
                        + "baby-step giant-step diagonal products"),
            "poly_degree": self.poly_degree,
            "coeff_modulus_bits": list(self.coeff_bits),
            "coeff_modulus_total_bits": total,
            "special_prime_bits": self.coeff_bits[-1],
            "plain_moduli": [int(t) for t in self.plain_moduli],
            "plain_modulus_bits": [t.bit_length() for t in self.plain_moduli],
            "crt_primes": len(self.plain_moduli),
            "total_plain_modulus_bits": self.total_plain_modulus.bit_length(),
            "requested_security_bits": self.security,
            "estimated_security_bits": estimate_security(self.poly_degree, total),
            "max_coeff_bits_at_128": max_coeff_modulus_bits(self.poly_degree, 128),
            "noise_margin_bits": self.margin,
            "noise_budget_estimate": list(self.trace),
            "noise_estimate_note": "conservative heuristic estimate (SEAL noise model rounded up), not a proof",
            **self._layout_dict(),
        }

    def _layout_dict(self) -> dict[str, Any]:
        if self.layout is None:
            return {}
        n, gather = self.poly_degree, self.gather
        steps = self.layout.all_steps(n)
        out: dict[str, Any] = {"period": self.layout.period, "rotation_steps": list(steps),
                               "galois_keys": len(steps) + (1 if gather else 0),
                               "rotations_per_prime": self.layout.rotations(n)}
        if gather is not None:
            out["first_stage"] = (f"client-gathered blocks: {gather.width} inputs per output, "
                                  f"{gather.chunks} ciphertext(s) per input")
        return out


def split_data_bits(bits: int) -> list[int]:
    """``bits`` bits of data primes as the fewest equal primes of at most 60 bits (each at least 20)."""
    count = max(1, math.ceil(bits / MAX_PRIME_BITS))
    size = math.ceil(bits / count)
    return [max(size, MIN_PRIME_BITS)] * count


def crt_primes(n: int, tbits: int, needed: int) -> list[int] | None:
    """Fewest ``tbits``-bit primes = 1 mod 2N whose product reaches ``needed`` (None if too few exist)."""
    count = min(64, 1 + needed.bit_length() // max(1, tbits - 1) + 1)
    try:
        pool = primes_1_mod(2 * n, tbits, count)
    except ParameterError:
        return None
    for k in range(1, len(pool) + 1):
        if math.prod(pool[:k]) >= needed:
            return pool[:k]
    return None


def check_plain_modulus(qm: QuantizedModel, plain_modulus: int, noise: int = 0) -> None:
    """Refuse a forced plaintext modulus below the bounds (outputs widened by ``noise``), or not a prime.

    Raises:
        ModulusOverflowError: smaller than ``qm.modulus_needed``, or than the outputs plus release noise.
        ParameterError: not prime (BFV batching needs a prime = 1 mod 2N).
    """
    check_modulus_with_noise(qm, plain_modulus, noise)
    if not is_prime(plain_modulus):
        raise ParameterError(f"plain_modulus {plain_modulus} is not prime; BFV batching needs a prime = 1 mod 2N")


def _plain_choices(n: int, needed: int, forced: int | None) -> list[list[int]]:
    """Candidate CRT prime sets for degree ``n``: the forced prime alone, or one set per prime size."""
    if forced is not None:
        return [[forced]] if (forced - 1) % (2 * n) == 0 else []
    choices = []
    for tbits in range(MAX_PRIME_BITS, (2 * n).bit_length(), -1):
        primes = crt_primes(n, tbits, needed)
        if primes is not None:
            choices.append(primes)
    return choices


def _attempt(stages: list[Stage], options: BFVOptions, n: int, plain: list[int],
             layout: LatencyLayout | None) -> BFVParameters | None:
    """Parameters for degree ``n`` and plaintext primes ``plain``, or None when they do not fit."""
    if layout is not None and layout.period > n // 2:
        return None
    t = max(plain)
    margin = options.margin + (flood_reserve_bits(n) if options.circuit_privacy is CircuitPrivacy.FLOOD else 0)
    data = split_data_bits(data_bits_needed(stages, options.mode, n, t, layout, margin))
    coeff = [*data, max(data)]
    if sum(coeff) > max_coeff_modulus_bits(n, options.security):
        return None
    coeff_primes: list[int] = []
    for b in sorted(set(coeff)):
        coeff_primes += primes_1_mod(2 * n, b, coeff.count(b))
    if set(coeff_primes) & set(plain):
        return None
    trace = noise_trace(stages, options.mode, n, t, data, layout, margin)
    return BFVParameters(options.mode, n, tuple(coeff), tuple(plain), options.security, margin, tuple(trace), layout)


def _cost(p: BFVParameters, inputs: int | None = None) -> float:
    """Relative cost: per input of full batches, or of one call of ``inputs`` inputs (THROUGHPUT)."""
    k, l_data, n = len(p.plain_moduli), len(p.coeff_bits) - 1, p.poly_degree
    if p.mode is Mode.THROUGHPUT:
        per_slot = k * (l_data + 1) * (1 + n / 65536)
        return per_slot if inputs is None else per_slot * n * math.ceil(inputs / n)
    return k * n * (l_data + 1) ** 2


def request_bits(p: BFVParameters) -> int:
    """Bits of one LATENCY request (seeded: one polynomial per ciphertext), 0 in THROUGHPUT."""
    if p.layout is None:
        return 0
    gather = p.layout.gather(p.poly_degree)
    per_prime = gather.chunks if gather is not None else 1
    return len(p.plain_moduli) * per_prime * p.poly_degree * sum(p.coeff_bits[:-1])


def _fewer_bytes(plain: BFVParameters, gathered: BFVParameters) -> bool:
    """``transfer=BYTES``: drop the gather when the request shrinks by at least the factor the rotations grow.

    A dense 784-128 layer: 13 ciphertexts per CRT prime against one, for 37 rotations against 15
    (measured 0.38 s against 0.23 s); a convolution's diagonal product: half the bytes for 4x the
    rotations, so it keeps its gather.
    """
    if plain.layout is None or gathered.layout is None:
        return False
    more = plain.layout.rotations(plain.poly_degree) / max(1, gathered.layout.rotations(gathered.poly_degree))
    fewer = request_bits(gathered) / max(1, request_bits(plain))
    return fewer > 1 and fewer >= more


def _cheapest(stages: list[Stage], options: BFVOptions, needed: int, layout: LatencyLayout | None,
              tried: list[str]) -> BFVParameters | None:
    """The cheapest parameters in one layout over every ring degree allowed, or None (why, in ``tried``)."""
    best: BFVParameters | None = None
    for n in [options.poly_degree] if options.poly_degree else POLY_DEGREES:
        choices = _plain_choices(n, needed, options.plain_modulus)
        if not choices and options.plain_modulus is not None:
            tried.append(f"N={n}: plain_modulus {options.plain_modulus} is not 1 mod {2 * n}")
            continue
        for cand in filter(None, (_attempt(stages, options, n, plain, layout) for plain in choices)):
            if best is None or _cost(cand, options.inputs_per_call) < _cost(best, options.inputs_per_call):
                best = cand
        if best is None:
            tried.append(f"N={n}: no prime size leaves {options.margin} bits of noise budget within "
                         f"{max_coeff_modulus_bits(n, options.security)} coefficient bits")
    return best


def choose_parameters(qm: QuantizedModel, stages: list[Stage], options: BFVOptions) -> BFVParameters:
    """The cheapest secure parameters for ``stages``; no key is made.

    Args:
        qm: The model (its bounds, and ``options.noise_bound``, fix the plaintext modulus).
        stages: Its plan.
        options: The user's choices.

    Raises:
        ModulusOverflowError: ``options.plain_modulus`` is smaller than the bounds need.
        ParameterError: no secure parameter set fits (too deep, or forced values clash).
    """
    if options.plain_modulus is not None:
        check_plain_modulus(qm, options.plain_modulus, options.noise_bound)
    needed = modulus_with_noise(qm, options.noise_bound)
    d_in = int(np.prod(qm.input_shape))
    layouts: list[LatencyLayout | None] = [latency_layout(stages, d_in) if options.mode is Mode.LATENCY else None]
    first = layouts[0]
    if options.transfer is Transfer.BYTES and first is not None and first.gather_cols is not None:
        layouts.append(latency_layout(stages, d_in, gather=False))  # one request ciphertext per CRT prime
    tried: list[str] = []
    found = [_cheapest(stages, options, needed, layout, tried) for layout in layouts]
    best = found[0]
    if len(found) > 1 and found[1] is not None and (best is None or _fewer_bytes(found[1], best)):
        best = found[1]
    if best is None:
        raise ParameterError(
            f"no BFV parameters at {options.security}-bit security evaluate this model ({qm.multiplicative_depth} "
            f"ciphertext multiplications, {qm.modulus_needed.bit_length()}-bit bound, mode {options.mode.value}): "
            + "; ".join(tried) + ". Reduce the depth or the bit widths, or use another mode."
        )
    return best
