"""Modulus chains for CKKS circuits whose affine stages cost no level.

In THROUGHPUT mode every weight is a scalar, and an integer scalar encoded at
scale 1 is exact: ``A·x`` then keeps the ciphertext's scale and drops no prime.
Only squares rescale.  The input's message is ``2**(w_floor + 4)`` (fresh noise
is about 2**3 times a rescale's), each square's prime is sized so that the
message after its rescale falls to about ``2**w_floor`` (at most 60 bits are
dropped), and ``q0`` is sized for the final message plus two bits.  For TenSEAL's
MNIST network (conv, square, fc, square, fc) this is three data primes instead
of six, which halves the work of every operation and of every encryption.

A chain is only a candidate: :func:`~.params.make_plan` checks every
message against the real primes and propagates the error bound through it.
"""

from __future__ import annotations

import enum
import math

from secquant.backends.ckks.stages import Stage, StageKind

__all__ = ["Free", "free_chain_bits"]

MAX_PRIME_BITS = 60
MIN_PRIME_BITS = 20
#: Bits of headroom between the final message and q0/2.
Q0_HEADROOM_BITS = 2
#: The input's message exceeds the floor by this much: fresh noise is larger than rescale noise.
INPUT_EXTRA_BITS = 4


class Free(enum.Enum):
    """Which affine stages multiply by integer weights at scale 1 (no rescale, no level)."""

    NONE = "none"  #: every affine stage rescales (weights encoded at q·Δ_out/Δ_in)
    FIRST = "first"  #: the first stage only (its input scale is the client's choice)
    ALL = "all"  #: every affine stage; only squares rescale


def _log2(x: float) -> float:
    return math.log2(max(float(x), 1.0))


def _split(bits: int) -> list[int]:
    """A modulus of ``bits`` bits as the fewest primes of at most 60 bits (each at least 20)."""
    parts = max(1, -(-bits // MAX_PRIME_BITS))
    each = max(MIN_PRIME_BITS, -(-bits // parts))
    return [each] * parts


def free_chain_bits(stages: list[Stage], w_floor: int) -> list[int] | None:
    """Prime bit sizes ``[q0 parts..., rescale primes (last rescale first)..., special]``.

    Args:
        stages: AFFINE, SQUARE and SHIFT stages only.
        w_floor: log2 of the message each square's rescale aims for; the
            input's message is ``INPUT_EXTRA_BITS`` above it.  In [20, 59].

    Returns:
        The bit sizes, or None when the stages include a kind this chain does
        not plan (POLY, or weights that are not integers: folded requantize
        factors) or the first stage is not affine.
    """
    if not stages or not stages[0].weighted:
        return None
    if any(st.kind is StageKind.POLY or (st.weighted and not st.integral) for st in stages):
        return None
    log_scale = w_floor + INPUT_EXTRA_BITS - _log2(stages[0].in_bound.max(initial=0.0))
    drops: list[int] = []
    for st in stages:
        if st.kind is StageKind.SQUARE:
            message = 2 * (log_scale + _log2(max(st.in_bound.max(initial=0.0), 1.0)))
            drop = min(MAX_PRIME_BITS, max(MIN_PRIME_BITS, math.ceil(message - w_floor)))
            drops.append(drop)
            log_scale = 2 * log_scale - drop
    final = log_scale + _log2(stages[-1].partial)
    q0 = max(MIN_PRIME_BITS, math.ceil(final) + Q0_HEADROOM_BITS)
    return _split(q0) + drops[::-1] + [MAX_PRIME_BITS]
