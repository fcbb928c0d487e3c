"""Circuit-privacy primitives for SEAL responses (BFV; CKKS not yet).

A response ``(c0, c1)`` decrypts to the phase ``c0 + c1*s = Delta*m + e (mod q)``.
The evaluation noise ``e`` depends on the server's weights, so the raw phase
leaks more than the output ``m``. Two finishes:

* :func:`rerandomize` adds a fresh public-key encryption of zero: the
  ciphertext's *randomness* no longer depends on the evaluation, but ``e`` does.
* :func:`flood` re-randomizes and then adds to ``c0`` a polynomial whose
  coefficients are uniform on ``[-B, B)``, drawn from :mod:`secrets`. With
  ``|e|_inf <= E`` and ``B >= N * E * 2**lambda_s`` the phase is within
  statistical distance ``2**-lambda_s`` of one whose noise is independent of
  ``e`` (the uniform-shift lemma, summed over the N coefficients). Decryption
  stays correct when the noise budget before flooding is at least
  ``lambda_s + log2 N + 2`` bits: :func:`flood_reserve_bits`, which the BFV
  planner adds to its margin.

``E`` comes from the planner's noise estimate (conservative, not a proof; see
:mod:`secquant.backends.bfv.noise`), so the distance is as good as that estimate.
"""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from secquant.errors import ConfigError

__all__ = ["STAT_SECURITY", "CircuitPrivacy", "describe", "flood", "flood_bound_bits", "flood_reserve_bits", "flooding_bits",
           "rerandomize"]

#: lambda_s: a flooded response is within statistical distance 2**-STAT_SECURITY of weight-independent noise.
STAT_SECURITY = 40


class CircuitPrivacy(enum.Enum):
    """How a SEAL server finishes its response.

    OFF: the result as evaluated (its noise depends on the weights).
    RERANDOMIZE: a fresh public-key encryption of zero added (fresh
        randomness; the evaluation noise is NOT hidden).
    FLOOD: re-randomized, then the noise flooded (:func:`flood`): the raw phase
        is within statistical distance 2**-STAT_SECURITY per ciphertext of one
        that does not depend on the weights. Costs :func:`flood_reserve_bits`
        of noise budget, which the planner reserves.
    """

    OFF = "off"
    RERANDOMIZE = "rerandomize"
    FLOOD = "flood"


def flooding_bits(noise_bound_bits: float, stat_security: int = 40, n_samples: int = 1) -> float:
    """Bits of uniform flooding noise that hide a noise bounded by ``2**noise_bound_bits``.

    Uniform noise on ``[-B, B]`` added to ``e`` with ``|e| <= E`` is within
    statistical distance ``E / B`` of the same noise added to ``0``; over
    ``n_samples`` coefficients the distance adds up, so
    ``B = n_samples * E * 2**stat_security``.

    Args:
        noise_bound_bits: log2 of the evaluation-noise bound E (bits, >= 0).
        stat_security: lambda_s; the distance is at most 2**-lambda_s (1..128).
        n_samples: Coefficients (or slots) released per response (>= 1).

    Returns:
        log2 of the flooding bound B, in bits.

    Raises:
        ConfigError: an argument out of range.
    """
    if noise_bound_bits < 0 or not 1 <= stat_security <= 128 or n_samples < 1:
        raise ConfigError("flooding_bits needs noise_bound_bits >= 0, 1 <= stat_security <= 128, n_samples >= 1")
    return noise_bound_bits + stat_security + math.log2(n_samples)


def rerandomize(ct: Any, context: Any, evaluator: Any, public_key: Any, to_last_level: bool = False) -> Any:
    """Add a fresh encryption of zero to ``ct`` (optionally after switching to the last level).

    Switching to the last level is off by default: the BFV planner does not yet
    reserve the budget for it, and on the digits MLP it exhausts the budget.

    Args:
        ct: A SEAL ciphertext (not in NTT form for BFV).
        context: Its ``SEALContext``.
        evaluator: A SEAL ``Evaluator`` of that context.
        public_key: The client's SEAL ``PublicKey`` (public material).
        to_last_level: Modulus-switch to ``context.last_parms_id()`` first.

    Returns:
        A new ciphertext at the last level, decrypting to the same plaintext.

    Raises:
        ConfigError: no public key is available.
    """
    from secquant.backends.seal.context import sealapi

    if public_key is None:
        raise ConfigError("circuit privacy needs the client's public key in the public material")
    sa = sealapi()
    src = ct
    if to_last_level:
        src = sa.Ciphertext(context)
        evaluator.mod_switch_to(ct, context.last_parms_id(), src)
    zero = sa.Ciphertext(context)
    sa.Encryptor(context, public_key).encrypt_zero(src.parms_id(), zero)
    if src.is_ntt_form():
        evaluator.transform_to_ntt_inplace(zero)
    out = sa.Ciphertext(context)
    evaluator.add(src, zero, out)
    return out


def flood_reserve_bits(poly_degree: int, stat_security: int = STAT_SECURITY) -> int:
    """Bits of noise budget that :func:`flood` consumes: ``lambda_s + ceil(log2 N) + 2``.

    Args:
        poly_degree: N (a power of two).
        stat_security: lambda_s (1..128).

    Raises:
        ConfigError: an argument out of range.
    """
    if poly_degree < 2 or not 1 <= stat_security <= 128:
        raise ConfigError("flood_reserve_bits needs poly_degree >= 2 and 1 <= stat_security <= 128")
    return stat_security + math.ceil(math.log2(poly_degree)) + 2


def flood_bound_bits(q_bits: float, t: int, budget_bits: float, poly_degree: int,
                     stat_security: int = STAT_SECURITY) -> int:
    """log2 of the flooding bound B for a ciphertext modulus of ``q_bits`` bits.

    A budget of ``b`` bits bounds the invariant noise by ``2**-(b+1)``, that is
    the phase noise by ``E = q / t * 2**-(b+1)``; B is ``N * E * 2**lambda_s``
    rounded up to a power of two.

    Args:
        q_bits: log2 q of the ciphertext's level.
        t: The plaintext modulus the budget estimate was made for.
        budget_bits: The estimated noise budget before flooding (bits).
        poly_degree: N.
        stat_security: lambda_s.

    Raises:
        ConfigError: the budget cannot absorb the flood (below :func:`flood_reserve_bits`).
    """
    if budget_bits < flood_reserve_bits(poly_degree, stat_security):
        raise ConfigError(f"noise flooding needs {flood_reserve_bits(poly_degree, stat_security)} bits of noise "
                          f"budget, the estimate leaves {budget_bits:.1f}")
    e_bits = q_bits - math.log2(t) - budget_bits - 1
    return max(1, math.ceil(flooding_bits(max(e_bits, 0.0), stat_security, poly_degree)))


def _uniform(bits: int, count: int) -> list[int]:
    """``count`` integers uniform on ``[-2**bits, 2**bits)`` from :mod:`secrets`."""
    width = (bits + 1 + 7) // 8
    raw = secrets.token_bytes(width * count)
    mask, half = (1 << (bits + 1)) - 1, 1 << bits
    return [(int.from_bytes(raw[i * width:(i + 1) * width], "little") & mask) - half for i in range(count)]


def flood(ct: Any, context: Any, evaluator: Any, public_key: Any, bound_bits: int) -> Any:
    """Re-randomize ``ct`` and add uniform noise on ``[-2**bound_bits, 2**bound_bits)`` to its ``c0``.

    Args:
        ct: A SEAL ciphertext in coefficient form (BFV), of size 2.
        context: Its ``SEALContext``.
        evaluator: A SEAL ``Evaluator`` of that context.
        public_key: The client's SEAL ``PublicKey``.
        bound_bits: log2 B, from :func:`flood_bound_bits`.

    Returns:
        A new ciphertext decrypting to the same plaintext, its phase noise flooded.

    Raises:
        ConfigError: no public key, or a ciphertext in NTT form or of size other than 2.
    """
    from secquant.backends.seal.ciphertext import from_bytes, to_bytes
    from secquant.backends.seal.context import sealapi
    from secquant.backends.seal.serialize import scratch

    fresh = rerandomize(ct, context, evaluator, public_key)
    if fresh.is_ntt_form() or fresh.size() != 2:
        raise ConfigError("noise flooding takes a size-2 ciphertext in coefficient form (BFV)")
    io = scratch()
    meta, data = from_bytes(io.dump(fresh))
    moduli = _level_moduli(context, fresh.parms_id())
    noise = _uniform(int(bound_bits), meta.poly_degree)
    out = np.array(data, dtype=np.uint64)
    for i, q in enumerate(moduli):  # residues and shifts are below q < 2**61: their uint64 sum cannot wrap
        total = out[0, i] + np.array([f % q for f in noise], dtype=np.uint64)
        out[0, i] = np.where(total >= np.uint64(q), total - np.uint64(q), total)
    return io.load(sealapi().Ciphertext(), context, to_bytes(meta, out), "flooded ciphertext")


def _level_moduli(context: Any, parms_id: Any) -> Sequence[int]:
    """The coefficient primes of the level ``parms_id``."""
    data = context.get_context_data(parms_id)
    return [int(m.value()) for m in data.parms().coeff_modulus()]


def describe(privacy: CircuitPrivacy, poly_degree: int) -> dict[str, Any]:
    """What a response finished with ``privacy`` guarantees and costs (JSON-ready, for ``parameters()``)."""
    if privacy is CircuitPrivacy.OFF:
        return {"method": "off", "guarantee": "none: the decrypted phase carries weight-dependent noise",
                "reserved_budget_bits": 0}
    if privacy is CircuitPrivacy.RERANDOMIZE:
        return {"method": "rerandomize", "guarantee": "fresh ciphertext randomness; the evaluation noise is NOT "
                "hidden (use flood)", "reserved_budget_bits": 0}
    return {"method": "flood", "statistical_security_bits": STAT_SECURITY,
            "guarantee": f"per response ciphertext, the decrypted phase is within statistical distance "
                         f"2**-{STAT_SECURITY} of one independent of the weights (given the planner's noise "
                         "estimate); k ciphertexts: k * 2**-" + str(STAT_SECURITY),
            "reserved_budget_bits": flood_reserve_bits(poly_degree),
            "cost": "the reserved budget (larger coefficient modulus or N), a fresh encryption of zero and "
                    "N uniform draws per response ciphertext"}
