"""Number theory of the SEAL backends: primality, NTT-friendly primes, CRT, Galois elements.

Pure Python integers; no SEAL object is made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError, ParameterError

__all__ = ["crt_combine", "galois_elt", "is_prime", "primes_1_mod"]

_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin, exact for n < 3.3e24 (covers every 64-bit n)."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def primes_1_mod(modulus: int, bits: int, count: int, exclude: Sequence[int] = ()) -> list[int]:
    """The ``count`` largest primes p < 2**bits with p = 1 mod ``modulus``, skipping ``exclude``.

    With ``modulus`` = 2N these are the NTT-friendly primes SEAL's
    ``CoeffModulus.Create`` picks, in the same order.

    Raises:
        ParameterError: fewer than ``count`` such primes have ``bits`` bits.
    """
    found: list[int] = []
    p = ((2**bits - 1) // modulus) * modulus + 1
    if p >= 2**bits:
        p -= modulus
    floor = 2 ** (bits - 1)
    skip = set(exclude)
    while len(found) < count and p > floor:
        if p not in skip and is_prime(p):
            found.append(p)
        p -= modulus
    if len(found) < count:
        raise ParameterError(f"only {len(found)} primes of {bits} bits are 1 mod {modulus}; {count} needed")
    return found


def crt_combine(residues: Sequence[Any], moduli: Sequence[int]) -> NDArray[Any]:
    """Combine residue arrays (object or int64) into one object array mod prod(moduli), exactly."""
    total = 1
    for m in moduli:
        total *= int(m)
    acc = np.zeros(np.shape(residues[0]), dtype=object)
    for r, m in zip(residues, moduli):
        rest = total // int(m)
        coef = rest * pow(rest, -1, int(m)) % total
        acc = acc + np.asarray(r).astype(object) * coef
    return np.mod(acc, total)


def galois_elt(step: int, poly_degree: int) -> int:
    """SEAL's Galois element ``3**step mod 2N`` for a left rotation by ``step`` (0 < step < N/2).

    BFV rotates each of its two rows of N/2 slots; CKKS rotates its N/2 slots.

    Raises:
        ConfigError: ``step`` outside (0, N/2).
    """
    if not 0 < step < poly_degree // 2:
        raise ConfigError(f"rotation step {step} outside (0, {poly_degree // 2})")
    return pow(3, step, 2 * poly_degree)
