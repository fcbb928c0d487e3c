"""Fixed Paillier keys for tests: primes derived from public labels, so anyone can rebuild them.

phe and secquant generate keys from system randomness, which cannot be seeded;
tests that need the same key every run (known-answer vectors, hypothesis
properties) build it here.  Each prime is ``next_prime`` of a SHAKE-256
expansion of a label with its top two bits set.  These keys are public and
must never protect anything.
"""

from __future__ import annotations

import functools
import hashlib

import gmpy2

from secquant.backends.paillier.keys import PaillierPrivateKey, keypair_from_primes

#: Fixed DJN secret x, so hs is fixed too.
KNOWN_DJN_X = int.from_bytes(hashlib.sha256(b"secquant paillier test djn x").digest(), "big")


def known_prime(label: str, bits: int) -> int:
    """The smallest prime above a SHAKE-256 expansion of ``label`` (exactly ``bits`` bits)."""
    raw = int.from_bytes(hashlib.shake_256(label.encode()).digest(bits // 8), "big")
    return int(gmpy2.next_prime(raw | (3 << (bits - 2))))


@functools.cache
def known_key(key_bits: int = 2048) -> PaillierPrivateKey:
    """The fixed test key of ``key_bits`` bits (2048 by default: 112-bit security, fast)."""
    p = known_prime(f"secquant paillier test p {key_bits}", key_bits // 2)
    q = known_prime(f"secquant paillier test q {key_bits}", key_bits // 2)
    return keypair_from_primes(p, q, djn_x=KNOWN_DJN_X, allow_insecure=key_bits < 2048)
