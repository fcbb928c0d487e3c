"""Fast Paillier arithmetic on gmpy2 integers.

Where the time goes in textbook Paillier (``phe``) is one full exponentiation
``r**n mod n**2`` per encryption: a ``k``-bit exponent on a ``2k``-bit modulus.
This module removes it in three ways, each exact and each standard:

* **DJN randomness** (default, :attr:`Randomness.DJN`): ``rho = hs**a`` with a
  random exponent ``a`` of ``ceil(k/2)`` bits (Damgård-Jurik-Nielsen 2010,
  the variant ABY and secretflow/heu use), instead of ``r**n`` with ``k`` bits.
* **CRT for the key owner**: the client holds p and q, so it computes
  ``hs**a`` mod p**2 and mod q**2 (moduli of k bits instead of 2k) and joins
  them by the CRT.  Decryption is CRT too (as in ``phe``).
* **Fixed-base tables** (Brickell-Gordon-McCurley-Wilson windowing): ``hs`` is
  fixed, so ``hs**(d·2**(w·j)) mod p**2`` is tabulated once per key for every
  w-bit digit d; one encryption is then ``ceil(k/(2w))`` table multiplications
  per prime and no squarings.

:class:`PublicEncryptor` is the same DJN table mod n**2 for parties that hold
only the public key (e.g. secure-aggregation clients).

:attr:`Randomness.FULL` keeps the textbook distribution (``r**n`` for uniform
``r``), computed by the key owner as ``u**p mod p**2`` and ``u**q mod q**2``.

The server side needs neither: :func:`multi_pow` evaluates a signed
multi-exponentiation ``prod c_i**e_i`` with Pippenger's bucket method (one
multiplication per base and window, plus two per bucket), and
:func:`pack_ciphertexts` moves values into slots by Horner's rule.
All randomness comes from :mod:`secrets`.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.paillier.keys import (
    PaillierPrivateKey,
    PaillierPublicKey,
    require_gmpy2,
)
from secquant.errors import ConfigError

__all__ = [
    "Decryptor",
    "Encryptor",
    "FixedBaseTable",
    "PublicEncryptor",
    "Randomness",
    "array_to_ciphertexts",
    "ciphertexts_to_array",
    "fresh_randomizer",
    "multi_pow",
    "pack_ciphertexts",
]

#: Window of the fixed-base tables: 2**8 entries per row, ceil(bits/8) rows.
TABLE_WINDOW_BITS = 8


class Randomness(enum.Enum):
    """How the encryption randomness ``rho`` (an n-th residue mod n**2) is made."""

    DJN = "djn"  #: hs**a, a of ceil(k/2) bits (DJN 2010); fixed-base tables + CRT
    FULL = "full"  #: r**n for uniform r in Z_n* (textbook); CRT, no tables


class FixedBaseTable:
    """Windowed fixed-base exponentiation ``base**e mod modulus`` for ``e < 2**exponent_bits``.

    The window is one byte: row ``j`` holds ``base**(d·256**j)`` for every byte
    value ``d``, so an exponent given as little-endian bytes costs one
    multiplication per nonzero byte.  Memory: ``ceil(exponent_bits/8)·256``
    residues (about 19 MB per prime at 3072-bit keys); building costs as many
    multiplications.
    """

    window = TABLE_WINDOW_BITS

    def __init__(self, base: Any, modulus: Any, exponent_bits: int) -> None:
        g2 = require_gmpy2()
        self.modulus = g2.mpz(modulus)
        self.exponent_bits = int(exponent_bits)
        self.exponent_bytes = -(-self.exponent_bits // 8)
        table: list[list[Any]] = []
        b = g2.mpz(base) % self.modulus
        one = g2.mpz(1)
        for _ in range(self.exponent_bytes):
            row = [one] * 256
            acc = one
            for d in range(1, 256):
                acc = acc * b % self.modulus
                row[d] = acc
            table.append(row)
            b = acc * b % self.modulus
        self.rows = table

    @property
    def entries(self) -> int:
        """Residues stored."""
        return len(self.rows) * 256

    def pow_bytes(self, digits: bytes) -> Any:
        """``base**e mod modulus`` for ``e = int.from_bytes(digits, "little")``.

        Raises:
            ConfigError: the exponent has more bytes than the table has rows.
        """
        if len(digits) > len(self.rows):
            raise ConfigError(f"exponent of {len(digits)} bytes exceeds the table's {len(self.rows)}")
        acc = self.rows[0][0]
        m = self.modulus
        for row, d in zip(self.rows, digits):
            if d:
                acc = acc * row[d] % m
        return acc

    def pow(self, e: int) -> Any:
        """``base**e mod modulus`` for ``0 <= e < 256**len(rows)``."""
        return self.pow_bytes(int(e).to_bytes(len(self.rows), "little"))


def _pow_pair(tp: FixedBaseTable, tq: FixedBaseTable, digits: bytes) -> tuple[Any, Any]:
    """``(tp.base**e, tq.base**e)`` in one pass over the bytes of e (little-endian)."""
    mp, mq = tp.modulus, tq.modulus
    ap = aq = tp.rows[0][0]
    for rowp, rowq, d in zip(tp.rows, tq.rows, digits):
        if d:
            ap = ap * rowp[d] % mp
            aq = aq * rowq[d] % mq
    return ap, aq


class Encryptor:
    """Encryption by the key owner: CRT, and DJN fixed-base tables or full randomness.

    Ciphertexts are standard Paillier ciphertexts with ``g = n + 1``: ``phe``
    decrypts them, and with :attr:`Randomness.DJN` they are exactly what a
    DJN encryptor holding only the public key would produce.
    """

    def __init__(self, key: PaillierPrivateKey, randomness: Randomness = Randomness.DJN) -> None:
        self.key = key
        self.randomness = randomness
        pub = key.public
        crt = key.crt
        self._n, self._n2 = pub.n, pub.nsquare
        self._p2, self._q2, self._p2_inv_q2 = crt["p2"], crt["q2"], crt["p2_inv_q2"]
        self._exp_bits = pub.djn_exponent_bits
        self._pool: list[Any] = []
        self.tables: tuple[FixedBaseTable, FixedBaseTable] | None = None
        if randomness is Randomness.DJN:
            self.tables = (
                FixedBaseTable(pub.hs % self._p2, self._p2, self._exp_bits),
                FixedBaseTable(pub.hs % self._q2, self._q2, self._exp_bits),
            )

    def _join(self, rp: Any, rq: Any) -> Any:
        """The residue mod n**2 that is rp mod p**2 and rq mod q**2."""
        return rp + self._p2 * ((rq - rp) * self._p2_inv_q2 % self._q2)

    def _random_exponent(self) -> bytes:
        """A uniform DJN exponent of ``ceil(k/2)`` bits as little-endian bytes."""
        raw = bytearray(secrets.token_bytes(-(-self._exp_bits // 8)))
        extra = 8 * len(raw) - self._exp_bits
        if extra:
            raw[-1] &= 0xFF >> extra
        return bytes(raw)

    def randomizer(self) -> Any:
        """One fresh n-th residue ``rho`` mod n**2 (from the pool when one is precomputed)."""
        if self._pool:
            return self._pool.pop()
        return self._fresh()

    def _fresh(self) -> Any:
        if self.tables is not None:
            return self._join(*_pow_pair(self.tables[0], self.tables[1], self._random_exponent()))
        g2 = require_gmpy2()
        p, q = self.key.p, self.key.q
        up = g2.mpz(secrets.randbelow(int(p) - 1) + 1)
        uq = g2.mpz(secrets.randbelow(int(q) - 1) + 1)
        return self._join(g2.powmod(up, p, self._p2), g2.powmod(uq, q, self._q2))

    def precompute(self, count: int) -> None:
        """Make ``count`` randomizers ahead of time (offline phase); encryption then costs one product."""
        if count < 0:
            raise ConfigError(f"count must be >= 0, got {count}")
        self._pool.extend(self._fresh() for _ in range(int(count)))

    @property
    def pooled(self) -> int:
        """Randomizers waiting in the pool."""
        return len(self._pool)

    def encrypt(self, values: Sequence[int]) -> list[Any]:
        """Encrypt integers (any sign; taken mod n) to ciphertexts mod n**2.

        ``(1 + n)**m · rho = rho + n·(m·rho mod n)  (mod n**2)``, so a message
        costs one small product besides its randomizer.
        """
        n, n2 = self._n, self._n2
        out = []
        for m in values:
            rho = self.randomizer()
            m = int(m)
            if m >= 0:
                c = rho + n * (m * rho % n)
                out.append(c - n2 if c >= n2 else c)
            else:  # (1 + n)**m = 1 - n·|m|: keeps the product small for negative messages
                c = rho - n * (-m * rho % n)
                out.append(c + n2 if c < 0 else c)
        return out


class PublicEncryptor:
    """Encryption with the public key only (DJN ``hs**a`` from a fixed-base table mod n**2).

    For parties without the primes (e.g. secure-aggregation clients).  Building
    the table costs about ``ceil(k/16)·256`` multiplications mod n**2 (and
    about 38 MB at 3072 bits); afterwards one encryption is ``ceil(k/16)``
    multiplications instead of a ``k/2``-bit exponentiation.  Worth it from a
    few hundred encryptions per key on.
    """

    def __init__(self, public: PaillierPublicKey) -> None:
        self.public = public
        self.table = FixedBaseTable(public.hs, public.nsquare, public.djn_exponent_bits)

    def randomizer(self) -> Any:
        """A fresh ``hs**a`` with ``a`` uniform on ceil(k/2) bits."""
        bits = self.public.djn_exponent_bits
        return self.table.pow(secrets.randbits(bits))

    def encrypt(self, values: Sequence[int]) -> list[Any]:
        """Encrypt integers (any sign; taken mod n) to ciphertexts mod n**2."""
        n, n2 = self.public.n, self.public.nsquare
        return [(1 + n * (int(m) % n)) * self.randomizer() % n2 for m in values]


class Decryptor:
    """CRT decryption: two half-size exponentiations per ciphertext."""

    def __init__(self, key: PaillierPrivateKey) -> None:
        crt = key.crt
        self._p, self._q, self._n = key.p, key.q, key.public.n
        self._p2, self._q2 = crt["p2"], crt["q2"]
        self._hp, self._hq, self._p_inv_q = crt["hp"], crt["hq"], crt["p_inv_q"]

    def decrypt(self, ciphertexts: Sequence[Any]) -> list[Any]:
        """Residues in ``[0, n)`` of the ciphertexts."""
        g2 = require_gmpy2()
        p, q, p2, q2 = self._p, self._q, self._p2, self._q2
        out = []
        for c in ciphertexts:
            mp = (g2.powmod(c % p2, p - 1, p2) - 1) // p * self._hp % p
            mq = (g2.powmod(c % q2, q - 1, q2) - 1) // q * self._hq % q
            out.append(mp + ((mq - mp) * self._p_inv_q % q) * p)
        return out


def fresh_randomizer(public: PaillierPublicKey, randomness: Randomness) -> Any:
    """A fresh n-th residue from the public key alone (server-side re-randomization).

    DJN: ``hs**a`` with ``a`` of ceil(k/2) bits; FULL: ``r**n`` for uniform r.
    """
    g2 = require_gmpy2()
    if randomness is Randomness.DJN:
        return g2.powmod(public.hs, secrets.randbits(public.djn_exponent_bits), public.nsquare)
    while True:
        r = g2.mpz(secrets.randbelow(int(public.n) - 1) + 1)
        if g2.gcd(r, public.n) == 1:
            return g2.powmod(r, public.n, public.nsquare)


def _window_cost(count: int, bits: int, c: int) -> int:
    windows = -(-bits // c)
    return windows * (count + 2 * min(1 << c, count)) + bits


def _multi_pow_unsigned(pairs: list[tuple[Any, int]], modulus: Any) -> Any:
    g2 = require_gmpy2()
    if not pairs:
        return g2.mpz(1)
    bits = max(e.bit_length() for _, e in pairs)
    c = min(range(1, min(bits, 16) + 1), key=lambda w: _window_cost(len(pairs), bits, w))
    mask = (1 << c) - 1
    acc = None
    for window in reversed(range(-(-bits // c))):
        if acc is not None:
            acc = g2.powmod(acc, 1 << c, modulus)
        shift = window * c
        buckets: dict[int, Any] = {}
        for base, e in pairs:
            d = (e >> shift) & mask
            if d:
                prev = buckets.get(d)
                buckets[d] = base if prev is None else prev * base % modulus
        if not buckets:
            continue
        # prod_d B_d**d = prod_i R_i**(d_i - d_{i+1}) with R_i the product of the i largest buckets.
        digits = sorted(buckets, reverse=True)
        running = total = None
        for i, d in enumerate(digits):
            running = buckets[d] if running is None else running * buckets[d] % modulus
            gap = d - (digits[i + 1] if i + 1 < len(digits) else 0)
            term = running if gap == 1 else g2.powmod(running, gap, modulus)
            total = term if total is None else total * term % modulus
        acc = total if acc is None else acc * total % modulus
    return g2.mpz(1) if acc is None else acc


def multi_pow(bases: Sequence[Any], exponents: Sequence[int], modulus: Any) -> Any:
    """``prod bases[i]**exponents[i] mod modulus`` for signed integer exponents.

    Positive and negative exponents are accumulated apart (Pippenger's bucket
    method with the window that minimizes the multiplication count) and joined
    with one modular inverse.  Zero exponents cost nothing.

    Raises:
        ConfigError: the lengths differ.
    """
    if len(bases) != len(exponents):
        raise ConfigError(f"{len(bases)} bases but {len(exponents)} exponents")
    g2 = require_gmpy2()
    pos = [(b, int(e)) for b, e in zip(bases, exponents) if e > 0]
    neg = [(b, -int(e)) for b, e in zip(bases, exponents) if e < 0]
    result = _multi_pow_unsigned(pos, modulus)
    if neg:
        result = result * g2.invert(_multi_pow_unsigned(neg, modulus), modulus) % modulus
    return result


def pack_ciphertexts(ciphertexts: Sequence[Any], slot_bits: int, modulus: Any) -> Any:
    """One ciphertext of ``sum_k m_k·2**(k·slot_bits)`` from ciphertexts of ``m_k`` (Horner's rule).

    Costs ``(len-1)·slot_bits`` squarings; whether the slots decode is the
    caller's :class:`~secquant.backends.paillier.packing.PackingLayout` check.
    """
    g2 = require_gmpy2()
    if not ciphertexts:
        raise ConfigError("nothing to pack")
    acc = ciphertexts[-1]
    shift = 1 << slot_bits
    for c in reversed(ciphertexts[:-1]):
        acc = g2.powmod(acc, shift, modulus) * c % modulus
    return acc


def ciphertexts_to_array(ciphertexts: Sequence[Any], width: int) -> NDArray[np.uint8]:
    """Big-endian fixed-width bytes, one row per ciphertext: shape ``(count, width)``."""
    blob = b"".join(int(c).to_bytes(width, "big") for c in ciphertexts)
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(ciphertexts), width)


def array_to_ciphertexts(array: NDArray[Any], width: int, modulus: Any) -> list[Any]:
    """Inverse of :func:`ciphertexts_to_array`, refusing values outside ``(0, modulus)``.

    Raises:
        ConfigError: wrong dtype or shape, or a value out of range.
    """
    g2 = require_gmpy2()
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != width:
        raise ConfigError(f"ciphertexts must be a uint8 array of shape (count, {width}), got {arr.dtype} {arr.shape}")
    raw = arr.tobytes()
    out = []
    for i in range(arr.shape[0]):
        c = g2.mpz(int.from_bytes(raw[i * width : (i + 1) * width], "big"))
        if not 0 < c < modulus:
            raise ConfigError(f"ciphertext {i} lies outside (0, n**2): not a ciphertext of this key")
        out.append(c)
    return out
