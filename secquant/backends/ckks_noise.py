"""CKKS noise bounds: how far a decrypted slot can be from the exact value.

Every bound is on one slot (the canonical embedding), in *message units*: a
ciphertext at scale Δ whose slot holds the integer ``y`` carries the message
``m = Δ·y``; an error ``e`` in message units is ``e/Δ`` in integer units.

The constants are the high-probability bounds of Cheon, Kim, Kim and Song,
"Homomorphic Encryption for Arithmetic of Approximate Numbers" (ASIACRYPT
2017), Lemmas 1-3, with SEAL's distributions: Gaussian errors of σ = 3.2 and a
uniform ternary secret (expected Hamming weight h = 2N/3).  They are six-σ
heuristic bounds on sums of independent terms, so they hold for every slot with
overwhelming but not certain probability; ``tests/backends/test_ckks*.py``
checks them on real ciphertexts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NoiseModel"]

SIGMA = 3.2
#: Relative error of one double-precision FFT (encode or decode) over N slots, generously.
FFT_REL = 2.0**-44


@dataclass(frozen=True)
class NoiseModel:
    """Noise bounds for one ring dimension.

    Attributes:
        poly_degree: N, a power of two.
    """

    poly_degree: int

    @property
    def _h(self) -> float:
        return 2.0 * self.poly_degree / 3.0

    @property
    def fresh(self) -> float:
        """Encryption noise of a fresh ciphertext: 8√2σN + 6σ√N + 16σ√(hN)."""
        n = self.poly_degree
        return 8 * math.sqrt(2) * SIGMA * n + 6 * SIGMA * math.sqrt(n) + 16 * SIGMA * math.sqrt(self._h * n)

    @property
    def rounding(self) -> float:
        """Encoding a vector rounds N coefficients by ≤ 1/2 each: six σ of their sum, 6·√(N/12)."""
        return 6 * math.sqrt(self.poly_degree / 12.0)

    @property
    def rescale(self) -> float:
        """Noise a rescale adds: √(N/3)·(3 + 8√h)."""
        return math.sqrt(self.poly_degree / 3.0) * (3 + 8 * math.sqrt(self._h))

    def key_switch(self, n_primes: int, largest_prime: float, special_prime: float) -> float:
        """Noise one relinearization or rotation adds at a level with ``n_primes`` primes.

        Each of the ``n_primes`` RNS digits (below ``largest_prime``) meets a key
        error of 8σN/√3; dividing by the special prime leaves
        ``n_primes·(q/P)·8σN/√3``, plus the rounding of that division.
        """
        per_digit = 8 * SIGMA * self.poly_degree / math.sqrt(3)
        return n_primes * (largest_prime / special_prime) * per_digit + self.rescale
