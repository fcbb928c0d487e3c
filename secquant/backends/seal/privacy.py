"""Circuit-privacy primitives for SEAL responses (BFV, CKKS).

Status: first step only. :func:`rerandomize` adds a fresh public-key
encryption of zero (modulus switching to the last level is optional), which makes the
ciphertext's *randomness* independent of the evaluation. It does NOT yet flood
the noise: the decrypted phase still carries the evaluation noise, which
depends on the weights. :func:`flooding_bits` states the noise-flooding size a
full implementation needs for a statistical distance of ``2**-lambda_s``.
"""

from __future__ import annotations

import enum
import math
from typing import Any

from secquant.errors import ConfigError

__all__ = ["CircuitPrivacy", "flooding_bits", "rerandomize"]


class CircuitPrivacy(enum.Enum):
    """How a SEAL server finishes its response.

    OFF: the result as evaluated (its noise depends on the weights).
    RERANDOMIZE: a fresh public-key encryption of zero added (fresh
    randomness; the evaluation noise is NOT yet flooded, see module docstring).
    """

    OFF = "off"
    RERANDOMIZE = "rerandomize"


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
