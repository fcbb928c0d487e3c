"""Paillier keys: generation from system randomness, known primes, and serialization.

Keys are the textbook Paillier keys with ``g = n + 1`` (the keys ``phe`` uses),
plus the public DJN element ``hs = (-x**2)**n mod n**2`` (Damgård, Jurik and
Nielsen, "A generalization of Paillier's public-key system with applications
to electronic voting", 2010), which lets anyone make encryption randomness as
``hs**a`` with a short exponent ``a`` of ``ceil(key_bits/2)`` bits.

* :func:`generate_keypair` draws both primes from :mod:`secrets` (the system
  CSPRNG).  ``phe`` key generation cannot be seeded; tests that need fixed keys
  call :func:`keypair_from_primes` with known primes.
* The public key serializes to a typed, digest-checked npz artifact holding
  ``n`` and ``hs`` as decimal strings; :func:`load_public_key` refuses an
  artifact that carries any private field (:class:`KeyMaterialError`).
* The private key serializes to its own artifact type and is written with
  mode 0600 by :meth:`PaillierPrivateKey.write`.

Key sizes follow NIST SP 800-57 Part 1 (Table 2): 2048-bit moduli give about
112-bit security, 3072-bit about 128 (the default), 7680 about 192 and 15360
about 256.  Below 2048 bits keys are refused unless ``allow_insecure=True``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from secquant.artifact import encode_artifact, read_artifact, write_bytes_atomic
from secquant.errors import ArtifactError, ConfigError, KeyMaterialError, ParameterError

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_KEY_BITS",
    "PRIVATE_KEY_TYPE",
    "PUBLIC_KEY_TYPE",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "check_key_bits",
    "generate_keypair",
    "keypair_from_primes",
    "load_private_key",
    "load_public_key",
    "require_gmpy2",
    "security_bits",
]

DEFAULT_KEY_BITS = 3072
MIN_KEY_BITS = 2048
PUBLIC_KEY_TYPE = "secquant.PaillierPublicKey"
PRIVATE_KEY_TYPE = "secquant.PaillierPrivateKey"
_VERSION = 1
#: Fields that only a private key has; public material carrying any is refused.
_PRIVATE_FIELDS = frozenset({"p", "q", "lambda", "lam", "mu", "phi", "private", "secret", "private_key"})
#: NIST SP 800-57 Part 1, Table 2: modulus bits -> classical security bits.
_NIST_LEVELS = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
#: Miller-Rabin rounds on top of GMP's own test (error < 4**-40 per prime).
_MR_ROUNDS = 40


def require_gmpy2() -> Any:
    """The gmpy2 module (imported lazily so that ``import secquant`` stays cheap).

    Raises:
        ConfigError: gmpy2 is not installed.
    """
    try:
        import gmpy2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("the Paillier backend needs gmpy2: pip install 'secquant[he]'") from exc
    return gmpy2


def security_bits(key_bits: int) -> int:
    """Estimated classical security of a ``key_bits``-bit modulus (NIST SP 800-57), 0 below 1024."""
    for bits, level in _NIST_LEVELS:
        if key_bits >= bits:
            return level
    return 0


def check_key_bits(key_bits: int, *, allow_insecure: bool = False) -> int:
    """Validate a modulus size in bits.

    Args:
        key_bits: Bits of n; even, >= 2048 (>= 256 with ``allow_insecure``).
        allow_insecure: Explicit, loud opt-out that admits keys below 2048 bits.

    Returns:
        ``key_bits`` as an int.

    Raises:
        ConfigError: not an even int.
        ParameterError: below 2048 bits without the opt-out.
    """
    if isinstance(key_bits, bool) or not isinstance(key_bits, int):
        raise ConfigError(f"key_bits must be an int, got {type(key_bits).__name__}")
    if key_bits % 2 or key_bits < 256:
        raise ConfigError(f"key_bits must be an even number >= 256, got {key_bits}")
    if key_bits < MIN_KEY_BITS:
        if not allow_insecure:
            raise ParameterError(
                f"a {key_bits}-bit Paillier key gives about {security_bits(key_bits)}-bit security; keys below "
                f"{MIN_KEY_BITS} bits are refused (default {DEFAULT_KEY_BITS}). Pass allow_insecure=True only "
                "for tests."
            )
        warnings.warn(f"INSECURE: {key_bits}-bit Paillier key (allow_insecure=True)", stacklevel=3)
    return key_bits


@dataclass(frozen=True, eq=False)
class PaillierPublicKey:
    """``n`` and the DJN element ``hs``; encryption is ``(1 + n)**m · rho mod n**2``.

    Attributes:
        n: The modulus p·q (gmpy2 mpz).
        hs: ``(-x**2)**n mod n**2`` for a secret random x (mpz in [1, n**2)).
    """

    n: Any
    hs: Any

    @cached_property
    def nsquare(self) -> Any:
        """n**2, the ciphertext modulus."""
        return self.n * self.n

    @property
    def bits(self) -> int:
        """Bits of n."""
        return int(self.n.bit_length())

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one serialized ciphertext (an integer mod n**2)."""
        return (int(self.nsquare.bit_length()) + 7) // 8

    @property
    def djn_exponent_bits(self) -> int:
        """Length of the DJN randomness exponent: ceil(bits/2)."""
        return (self.bits + 1) // 2

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of n (hex, first 32 digits): names the key in payloads."""
        return hashlib.sha256(str(int(self.n)).encode()).hexdigest()[:32]

    def to_bytes(self) -> bytes:
        """The public key as a typed, digest-checked npz artifact (no secret)."""
        meta = {"n": str(int(self.n)), "hs": str(int(self.hs)), "key_bits": self.bits, "g": "n+1"}
        return encode_artifact(PUBLIC_KEY_TYPE, _VERSION, meta, {})

    def to_phe(self) -> Any:
        """The same key as a ``phe.PaillierPublicKey``."""
        from phe import paillier

        return paillier.PaillierPublicKey(int(self.n))


@dataclass(frozen=True, eq=False)
class PaillierPrivateKey:
    """The primes, and the precomputed values of CRT decryption and encryption.

    Attributes:
        public: The public key.
        p, q: The primes (mpz), p != q.
    """

    public: PaillierPublicKey
    p: Any = field(repr=False)
    q: Any = field(repr=False)

    @cached_property
    def crt(self) -> dict[str, Any]:
        """p**2, q**2, the CRT coefficients and the decryption constants hp, hq."""
        g2 = require_gmpy2()
        p, q, n = self.p, self.q, self.public.n
        p2, q2 = p * p, q * q
        # h_p = L_p((n+1)**(p-1) mod p**2)**-1 mod p, as in phe's CRT decryption.
        hp = g2.invert((g2.powmod(n + 1, p - 1, p2) - 1) // p, p)
        hq = g2.invert((g2.powmod(n + 1, q - 1, q2) - 1) // q, q)
        return {
            "p2": p2, "q2": q2, "hp": hp, "hq": hq,
            "p_inv_q": g2.invert(p, q), "p2_inv_q2": g2.invert(p2, q2),
        }

    def to_bytes(self) -> bytes:
        """The private key as an artifact: keep it secret (see :meth:`write`)."""
        meta = {"n": str(int(self.public.n)), "hs": str(int(self.public.hs)), "p": str(int(self.p)),
                "q": str(int(self.q)), "key_bits": self.public.bits}
        return encode_artifact(PRIVATE_KEY_TYPE, _VERSION, meta, {})

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the private key atomically with mode 0600."""
        return write_bytes_atomic(path, self.to_bytes(), mode=0o600)

    def to_phe(self) -> Any:
        """The same key as a ``phe.PaillierPrivateKey`` (decrypts secquant ciphertexts)."""
        from phe import paillier

        return paillier.PaillierPrivateKey(self.public.to_phe(), int(self.p), int(self.q))


def _random_prime(bits: int) -> Any:
    """A prime of exactly ``bits`` bits with its top two bits set, from :mod:`secrets`."""
    g2 = require_gmpy2()
    while True:
        candidate = g2.mpz(secrets.randbits(bits)) | (3 << (bits - 2)) | 1
        p = g2.next_prime(candidate)
        if p.bit_length() == bits and g2.is_prime(p, _MR_ROUNDS):
            return p


def _djn_hs(n: Any, x: int | None) -> Any:
    g2 = require_gmpy2()
    if x is None:
        while True:
            x = secrets.randbelow(int(n) - 2) + 2
            if g2.gcd(x, n) == 1:
                break
    elif not 1 < x < n or g2.gcd(x, n) != 1:
        raise ConfigError("djn_x must lie in (1, n) and be coprime to n")
    h = (-g2.mpz(x) * x) % n
    return g2.powmod(h, n, n * n)


def keypair_from_primes(
    p: int, q: int, *, djn_x: int | None = None, allow_insecure: bool = False
) -> PaillierPrivateKey:
    """Build a key pair from known primes (for tests and known-answer vectors).

    Args:
        p, q: Distinct primes of equal bit length whose product has an even
            number of bits.
        djn_x: The DJN secret x (fixes ``hs``); random from :mod:`secrets` if None.
        allow_insecure: Admit moduli below 2048 bits.

    Raises:
        ConfigError: p or q is not prime, p == q, gcd(n, (p-1)(q-1)) != 1, or
            the modulus size is odd.
        ParameterError: the modulus is below 2048 bits without the opt-out.
    """
    g2 = require_gmpy2()
    p, q = g2.mpz(int(p)), g2.mpz(int(q))
    if p == q or not (g2.is_prime(p, _MR_ROUNDS) and g2.is_prime(q, _MR_ROUNDS)):
        raise ConfigError("p and q must be distinct primes")
    n = p * q
    if g2.gcd(n, (p - 1) * (q - 1)) != 1:
        raise ConfigError("gcd(n, (p-1)(q-1)) must be 1 for Paillier keys")
    check_key_bits(int(n.bit_length()), allow_insecure=allow_insecure)
    if p > q:
        p, q = q, p
    return PaillierPrivateKey(PaillierPublicKey(n, _djn_hs(n, djn_x)), p, q)


def generate_keypair(key_bits: int = DEFAULT_KEY_BITS, *, allow_insecure: bool = False) -> PaillierPrivateKey:
    """Fresh keys from system randomness.

    Args:
        key_bits: Bits of n (even; default 3072, about 128-bit security).
        allow_insecure: Admit keys below 2048 bits (tests only).

    Raises:
        ConfigError / ParameterError: see :func:`check_key_bits`.
    """
    check_key_bits(key_bits, allow_insecure=allow_insecure)
    g2 = require_gmpy2()
    half = key_bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == key_bits and g2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    if p > q:
        p, q = q, p
    return PaillierPrivateKey(PaillierPublicKey(n, _djn_hs(n, None)), p, q)


def _meta_int(meta: dict[str, Any], name: str) -> Any:
    g2 = require_gmpy2()
    value = meta.get(name)
    if not isinstance(value, str) or not value.isdigit():
        raise ConfigError(f"Paillier key material lacks a decimal {name!r}")
    return g2.mpz(value)


def load_public_key(material: bytes, *, allow_insecure: bool = False) -> PaillierPublicKey:
    """Read public material written by :meth:`PaillierPublicKey.to_bytes`.

    Raises:
        KeyMaterialError: the material is a private key or carries a private
            field (p, q, lambda, mu, ...).
        ConfigError: the material is malformed (not an artifact, bad digest,
            missing or inconsistent fields).
        ParameterError: the key is below 2048 bits without the opt-out.
    """
    if not isinstance(material, (bytes, bytearray)):
        raise ConfigError(f"public material must be bytes, got {type(material).__name__}")
    try:
        _, meta, _ = read_artifact(bytes(material), PUBLIC_KEY_TYPE, (_VERSION,))
    except ArtifactError as exc:
        try:
            read_artifact(bytes(material), PRIVATE_KEY_TYPE, (_VERSION,))
        except ArtifactError:
            raise ConfigError(f"malformed Paillier public material: {exc}") from exc
        raise KeyMaterialError(
            "the server was handed a Paillier PRIVATE key; give it client.public_material() only"
        ) from None
    leaked = sorted(_PRIVATE_FIELDS & set(meta))
    if leaked:
        raise KeyMaterialError(f"public material carries private key fields {leaked}; refusing it")
    n, hs = _meta_int(meta, "n"), _meta_int(meta, "hs")
    if meta.get("key_bits") != int(n.bit_length()) or n % 2 == 0 or not 0 < hs < n * n:
        raise ConfigError("Paillier public material is inconsistent (key_bits, parity of n or range of hs)")
    check_key_bits(int(n.bit_length()), allow_insecure=allow_insecure)
    return PaillierPublicKey(n, hs)


def load_private_key(source: bytes | str | os.PathLike[str], *, allow_insecure: bool = False) -> PaillierPrivateKey:
    """Read a private key written by :meth:`PaillierPrivateKey.write` or ``to_bytes``.

    Raises:
        ConfigError: malformed, or p·q != n.
    """
    try:
        _, meta, _ = read_artifact(source if isinstance(source, bytes) else Path(source), PRIVATE_KEY_TYPE)
    except ArtifactError as exc:
        raise ConfigError(f"malformed Paillier private key: {exc}") from exc
    p, q, n, hs = (_meta_int(meta, k) for k in ("p", "q", "n", "hs"))
    if p * q != n:
        raise ConfigError("Paillier private key is inconsistent: p*q != n")
    check_key_bits(int(n.bit_length()), allow_insecure=allow_insecure)
    return PaillierPrivateKey(PaillierPublicKey(n, hs), p, q)
