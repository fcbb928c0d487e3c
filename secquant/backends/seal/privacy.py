"""Circuit-privacy primitives for SEAL responses (BFV and CKKS).

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

CKKS has no budget to spare for a statistical distance of 2**-40 (its
precision would be gone), so it floods with Gaussian noise sized for the
IND-CPA^D setting: :func:`gaussian_flood` with :func:`ckks_flood_sigma_factor`
times the plan's error bound, at ``s`` bits of security against ``Q``
decrypted responses; the CKKS planner adds :func:`ckks_flood_error_factor`
times its error to the stated bound and chooses scales that keep the target.
"""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from secquant.errors import ConfigError

__all__ = ["STAT_SECURITY", "CircuitPrivacy", "check_ckks_flood", "ckks_flood_error_factor", "ckks_flood_sigma_factor",
           "describe", "describe_ckks", "flood", "flood_bound_bits", "flood_reserve_bits", "flooding_bits",
           "gaussian_flood", "rerandomize"]

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
    if src.is_ntt_form() and not zero.is_ntt_form():  # BFV in NTT form; CKKS encrypts in NTT form already
        evaluator.transform_to_ntt_inplace(zero)
    zero.scale = src.scale  # CKKS: an encryption of zero has any scale; BFV: 1.0 on both
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
        ct: A SEAL ciphertext of size 2 (BFV: coefficient form).
        context: Its ``SEALContext``.
        evaluator: A SEAL ``Evaluator`` of that context.
        public_key: The client's SEAL ``PublicKey``.
        bound_bits: log2 B, from :func:`flood_bound_bits`.

    Returns:
        A new ciphertext decrypting to the same plaintext, its phase noise flooded.

    Raises:
        ConfigError: no public key, or a ciphertext of size other than 2.
    """
    fresh = rerandomize(ct, context, evaluator, public_key)
    return _add_to_c0(fresh, context, evaluator, _uniform(int(bound_bits), fresh.poly_modulus_degree()))


def gaussian_flood(ct: Any, context: Any, evaluator: Any, public_key: Any, sigma: float) -> Any:
    """Re-randomize ``ct`` and add to its ``c0`` a polynomial of Gaussian coefficients of std ``sigma``.

    A coefficient is ``rint(sigma * z)`` for ``z`` standard normal from a Philox
    stream keyed by :mod:`secrets` (:func:`~secquant.dp.samplers.secure_generator`).
    Above ``2**50`` a double cannot hold every integer, so a uniform integer as
    wide as its spacing is added; independent noise added after the Gaussian can
    only bring the two hypotheses closer (data processing), so the sizing holds.
    CKKS ciphertexts (NTT form) are taken out of NTT form for the addition.

    Args:
        ct: A SEAL ciphertext of size 2.
        context: Its ``SEALContext``.
        evaluator: A SEAL ``Evaluator`` of that context.
        public_key: The client's SEAL ``PublicKey``.
        sigma: Standard deviation per coefficient, in (0, 2**200].

    Raises:
        ConfigError: no public key, a ciphertext of size other than 2, or ``sigma`` out of range.
    """
    from secquant.dp.samplers import secure_generator

    if not 0 < sigma <= 2.0**200:
        raise ConfigError(f"the flooding deviation must lie in (0, 2**200], got {sigma!r}")
    fresh = rerandomize(ct, context, evaluator, public_key)
    n = fresh.poly_modulus_degree()
    noise = [int(v) for v in np.rint(secure_generator().normal(0.0, sigma, n))]
    spacing_bits = max(0, math.ceil(math.log2(sigma)) + 3 - 52)  # |draw| < 8 sigma: spacing <= 2**spacing_bits
    if spacing_bits:
        noise = [v + u for v, u in zip(noise, _uniform(spacing_bits, n))]
    return _add_to_c0(fresh, context, evaluator, noise)


def _add_to_c0(fresh: Any, context: Any, evaluator: Any, noise: list[int]) -> Any:
    """``fresh`` with the integer polynomial ``noise`` added to its ``c0`` (reduced mod every prime of its level)."""
    from secquant.backends.seal.ciphertext import from_bytes, to_bytes
    from secquant.backends.seal.context import sealapi
    from secquant.backends.seal.serialize import scratch

    if fresh.size() != 2:
        raise ConfigError("noise flooding takes a ciphertext of size 2")
    ntt = fresh.is_ntt_form()
    if ntt:
        evaluator.transform_from_ntt_inplace(fresh)
    io = scratch()
    meta, data = from_bytes(io.dump(fresh))
    out = np.array(data, dtype=np.uint64)
    for i, q in enumerate(_level_moduli(context, fresh.parms_id())):  # both terms < q < 2**61: no uint64 wrap
        total = out[0, i] + np.array([f % q for f in noise], dtype=np.uint64)
        out[0, i] = np.where(total >= np.uint64(q), total - np.uint64(q), total)
    result = io.load(sealapi().Ciphertext(context), context, to_bytes(meta, out), "flooded ciphertext")
    if ntt:
        evaluator.transform_to_ntt_inplace(result)
    return result


def ckks_flood_sigma_factor(security_bits: int, queries: int) -> float:
    """sigma_f / E for CKKS: ``2**(s/2) * sqrt(64 * Q)``.

    Gaussian flooding of std ``sigma_f`` per coefficient, over an evaluation
    noise bounded by ``E`` per coefficient, gives ``s`` bits of security against
    an adversary who decrypts ``Q`` flooded results (Li, Micciancio, Schultz and
    Sorrell, "Securing approximate homomorphic encryption using differential
    privacy", CRYPTO 2022: ``log2 sigma_f = log2 E + s/2 + log2(64 Q)/2``), the
    IND-CPA^D sizing; here the hidden quantity is the weight-dependent noise.

    Raises:
        ConfigError: ``security_bits`` outside [1, 128] or ``queries`` < 1.
    """
    check_ckks_flood(security_bits, queries)
    return 2.0 ** (security_bits / 2) * math.sqrt(64.0 * queries)


def ckks_flood_error_factor(security_bits: int, queries: int) -> float:
    """The flood's error in a decoded slot per unit of the evaluation error bound (same units).

    The planner bounds the evaluation error in a slot by ``E_slot`` (six standard
    deviations under the CKKS error model's independence heuristic, Cheon-Kim-Kim-Song
    2017); a coefficient of that noise then has six-sigma bound
    ``E = E_slot / sqrt(N/2)``.  Gaussian coefficients of std ``sigma_f`` give a slot
    error of six sigma ``6 * sqrt(N/2) * sigma_f``, so the ratio is
    ``6 * ckks_flood_sigma_factor(s, Q)``, whatever N.
    """
    return 6.0 * ckks_flood_sigma_factor(security_bits, queries)


def check_ckks_flood(security_bits: object, queries: object) -> None:
    """Refuse CKKS flooding parameters out of range.

    Raises:
        ConfigError: not ints, ``security_bits`` outside [1, 128], or ``queries`` outside [1, 2**40].
    """
    for name, value, hi in (("flood_security_bits", security_bits, 128), ("flood_queries", queries, 2**40)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ConfigError(f"{name} must be an int in [1, {hi}], got {value!r}")


def describe_ckks(privacy: CircuitPrivacy, poly_degree: int, security_bits: int, queries: int,
                  sigma: float) -> dict[str, Any]:
    """What a CKKS response finished with ``privacy`` guarantees and costs (JSON-ready)."""
    if privacy is not CircuitPrivacy.FLOOD:
        out = describe(privacy, poly_degree)
        out.pop("reserved_budget_bits", None)
        return out
    return {"method": "flood", "security_bits": security_bits, "queries": queries,
            "flood_sigma_log2": math.log2(sigma) if sigma > 0 else 0.0,
            "guarantee": f"{security_bits}-bit security (Li-Micciancio-Schultz-Sorrell 2022 sizing) that a client "
                         f"decrypting at most {queries} flooded responses learns nothing of the weight-dependent "
                         "noise beyond the output, given the planner's error bound E",
            "cost": f"Gaussian noise of std E * 2**({security_bits}/2) * sqrt(64 * {queries}) per coefficient: "
                    f"the stated error grows by {math.log2(1 + ckks_flood_error_factor(security_bits, queries)):.1f} "
                    "bits (the planner chooses scales for it), a fresh encryption of zero and N Gaussian draws "
                    "per response ciphertext"}


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
