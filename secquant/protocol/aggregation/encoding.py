"""Client-side encoding for secure aggregation: clip, scale, round, add noise, pack, encrypt.

Pure functions (no network) shared by the real clients
(:mod:`secquant.protocol.aggregation.client`) and the audited simulation of the
release (:func:`released_sum_mechanism`), so the auditor checks the very code
the clients run.  Ciphertexts travel as fixed-width big-endian integers of
``ceil(bits(n²)/8)`` bytes each.

Integrity tags: the last slot of every plaintext carries a tag
``t_j = SHA-256(context | seed | j) mod 2^b`` derived from a fresh 128-bit seed
of the message (:func:`message_tags`); the seed itself travels encrypted under
the round's key (:func:`encrypt_seed`), so the aggregator can read neither.
The key-holder decrypts the seeds of the submissions it verified and checks
that the tag slots of the sum equal the sum of their tags: a product that
drops, repeats or substitutes a submission fails with probability about
``1 - 2^-b`` per plaintext.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.dp.samplers import sample_discrete_gaussian
from secquant.errors import ConfigError
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.errors import MessageError

__all__ = [
    "TAG_SEED_BYTES",
    "ciphertext_width",
    "decode_ciphertexts",
    "decrypt_plaintexts",
    "decrypt_sum",
    "encode_ciphertexts",
    "encode_updates",
    "encrypt_residues",
    "encrypt_seed",
    "message_tags",
    "noise_shares",
    "released_sum_mechanism",
    "to_residues",
]

_MAX_ROUNDING_TRIES = 32
_TAG_CONTEXT = b"secquant/aggregation/tag/v1\x00"
#: Bytes of a message's tag seed (drawn from :mod:`secrets`, sent encrypted to the key-holder).
TAG_SEED_BYTES = 16


def encode_updates(updates: ArrayLike, config: RoundConfig, rng: np.random.Generator) -> NDArray[np.int64]:
    """Clip each row to ``clip_norm``, divide by γ and round so that ``‖q‖₂ <= norm_bound``.

    Conditional randomized rounding: unbiased stochastic rounding, redrawn (at most
    32 times) while the norm exceeds the bound; rows still too long are rounded
    toward zero, which never increases the norm, so the bound always holds.

    Args:
        updates: Float updates, shape (m, dim) or (dim,).
        config: The round.
        rng: Randomness of the rounding.

    Returns:
        int64 array of shape (m, dim).

    Raises:
        ConfigError: wrong shape or non-finite values.
    """
    x = np.atleast_2d(np.asarray(updates, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] != config.dim:
        raise ConfigError(f"updates must have shape (m, {config.dim}), got {np.shape(updates)}")
    if not np.all(np.isfinite(x)):
        raise ConfigError("updates contain NaN or infinity")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x * np.minimum(1.0, config.clip_norm / np.maximum(norms, 1e-300))
    y = x / config.granularity
    low = np.floor(y)
    frac = y - low
    q = np.empty_like(low, dtype=np.int64)
    todo = np.arange(len(y))
    bound2 = config.norm_bound ** 2
    for _ in range(_MAX_ROUNDING_TRIES):
        if todo.size == 0:
            break
        draw = (low[todo] + (rng.random(frac[todo].shape) < frac[todo])).astype(np.int64)
        ok = np.sum(draw.astype(np.float64) ** 2, axis=1) <= bound2
        q[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:
        q[todo] = np.trunc(y[todo]).astype(np.int64)
    return q


def noise_shares(config: RoundConfig, shares: int, rng: np.random.Generator, rows: int = 1) -> NDArray[np.int64]:
    """Sum of ``shares`` independent N_Z(0, σ²) vectors, per row: shape (rows, dim).

    Raises:
        ConfigError: ``shares`` < 0 or ``rows`` < 1.
    """
    if shares < 0 or rows < 1:
        raise ConfigError(f"need shares >= 0 and rows >= 1, got {shares}, {rows}")
    total = np.zeros((rows, config.dim), dtype=np.int64)
    for _ in range(shares):
        total += sample_discrete_gaussian(config.sigma, rows * config.dim, rng).reshape(rows, config.dim)
    return total


def to_residues(values: NDArray[np.int64], config: RoundConfig) -> NDArray[np.int64]:
    """Centered residues mod 2^b, in ``[-2^(b-1), 2^(b-1))``."""
    m, half = config.modulus, config.modulus >> 1
    return np.mod(np.asarray(values, dtype=np.int64) + half, m) - half


def ciphertext_width(public_n: int) -> int:
    """Bytes of one ciphertext on the wire: ``ceil(bits(n²)/8)``."""
    return ((int(public_n) ** 2).bit_length() + 7) // 8


def encode_ciphertexts(cts: list[int], public_n: int) -> bytes:
    """Concatenate ciphertexts as fixed-width big-endian integers."""
    width = ciphertext_width(public_n)
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def decode_ciphertexts(payload: bytes, public_n: int, count: int) -> list[int]:
    """Split and check ``count`` ciphertexts.

    Raises:
        MessageError: wrong length (truncated or padded), or a value that is not
            a unit below n² (not a Paillier ciphertext under this key).
    """
    width = ciphertext_width(public_n)
    if len(payload) != width * count:
        raise MessageError(f"expected {count} ciphertexts of {width} bytes ({width * count} bytes), "
                           f"got {len(payload)} bytes (truncated, or made under another key?)")
    n2 = int(public_n) ** 2
    out = []
    for i in range(count):
        c = int.from_bytes(payload[i * width:(i + 1) * width], "big")
        if not 0 < c < n2 or math.gcd(c, int(public_n)) != 1:
            raise MessageError(f"ciphertext {i} is not a Paillier ciphertext under this public key")
        out.append(c)
    return out


def message_tags(seed: bytes, config: RoundConfig) -> NDArray[np.int64]:
    """The integrity tag of each plaintext of one message: ``SHA-256(context | seed | j) mod 2^b`` in ``[0, 2^b)``."""
    count = config.ciphertexts_per_message()
    tags = [int.from_bytes(hashlib.sha256(_TAG_CONTEXT + bytes(seed) + j.to_bytes(4, "big")).digest(), "big")
            % config.modulus for j in range(count)]
    return np.asarray(tags, dtype=np.int64)


def _randomizer(public_key: Any, own_randomness: bool) -> Any:
    from secquant.backends.paillier.crypto import Randomness, fresh_randomizer

    return fresh_randomizer(public_key, Randomness.FULL if own_randomness else Randomness.DJN)


def encrypt_residues(residues: NDArray[np.int64], config: RoundConfig, public_key: Any, *,
                     tags: NDArray[np.int64] | None = None, own_randomness: bool = True) -> list[int]:
    """Pack centered residues (and one tag per plaintext) into plaintexts and encrypt each.

    Plaintext j holds ``config.data_slots()`` values (the last plaintext padded
    with zeros) and then ``tags[j]``.  Encryption is ``(1 + n)^m · ρ mod n²``
    with a fresh n-th residue ``ρ`` (randomness from :mod:`secrets`): ``r^n``
    for a uniform ``r`` (``own_randomness``, the default: nothing the key-holder
    chose enters it) or DJN ``hs^a`` with a ceil(k/2)-bit ``a`` (twice as fast;
    as strong as the key-holder's ``hs``).

    Args:
        residues: Centered residues mod 2^b, shape (dim,).
        config: The round.
        public_key: A :class:`secquant.backends.paillier.keys.PaillierPublicKey`.
        tags: One residue mod 2^b per plaintext (:func:`message_tags`); zeros if None.
        own_randomness: ``r^n`` (True) or DJN ``hs^a`` (False).
    """
    layout, per, count = config.layout(), config.data_slots(), config.ciphertexts_per_message()
    tag = to_residues(np.zeros(count, dtype=np.int64) if tags is None else np.asarray(tags), config)
    values = [int(v) for v in residues]
    n, n2 = int(public_key.n), public_key.nsquare
    out = []
    for j in range(count):
        chunk = values[j * per:(j + 1) * per]
        m = layout.encode_mod([*chunk, *([0] * (per - len(chunk))), int(tag[j])], n)
        out.append(int((1 + m * n) * _randomizer(public_key, own_randomness) % n2))
    return out


def encrypt_seed(seed: bytes, public_key: Any, *, own_randomness: bool = True) -> int:
    """Encrypt a message's tag seed (as a big-endian integer) under the round's key."""
    m = int.from_bytes(bytes(seed), "big")
    return int((1 + m * int(public_key.n)) * _randomizer(public_key, own_randomness) % public_key.nsquare)


def decrypt_plaintexts(cts: list[int], config: RoundConfig, private_key: Any
                       ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Decrypt summed ciphertexts (CRT) and unpack data and tags, each mod 2^b in ``[0, 2^b)``.

    Returns:
        (the sum's ``dim`` data values, the sum's tag of each plaintext).

    Raises:
        ModulusOverflowError: a slot overflowed its guard bits (more summands than planned, or another key).
    """
    from secquant.backends.paillier.crypto import Decryptor

    layout, per = config.layout(), config.data_slots()
    n = int(private_key.public.n)
    values: list[int] = []
    tags: list[int] = []
    for residue in Decryptor(private_key).decrypt([_mpz(c) for c in cts]):
        slots = layout.decode_mod(int(residue), n, per + 1)
        values.extend(slots[:per])
        tags.append(slots[per])
    data = np.mod(np.asarray(values[:config.dim], dtype=object), config.modulus).astype(np.int64)
    return data, np.mod(np.asarray(tags, dtype=object), config.modulus).astype(np.int64)


def decrypt_sum(cts: list[int], config: RoundConfig, private_key: Any) -> NDArray[np.int64]:
    """The sum's data mod 2^b as residues in ``[0, 2^b)`` (:func:`decrypt_plaintexts` without the tags)."""
    return decrypt_plaintexts(cts, config, private_key)[0]


def _mpz(value: int) -> Any:
    import gmpy2

    return gmpy2.mpz(value)


def released_sum_mechanism(config: RoundConfig, others: ArrayLike, *, noise_in_sum: int | None = None,
                           ) -> Callable[[Any, np.random.Generator, int], NDArray[np.int64]]:
    """The released sum as a mechanism of one client's update, for ``secquant.audit.audit_mechanism``.

    Decryption is exact, so the release equals this plaintext simulation of the
    same encoding: every client rounds with :func:`encode_updates`, the sum
    carries ``noise_in_sum`` shares of :func:`noise_shares`, reduced mod 2^b.

    Args:
        config: The round (``dim`` is usually 1 for auditing).
        others: Float updates of the other clients, shape (n_clients - 1, dim).
        noise_in_sum: Shares in the release (default ``min_noise_shares``); fewer
            models dropouts without top-up.

    Returns:
        ``mechanism(x, rng, n)``: n released sums (n, dim) for the target update x.
    """
    rest = np.atleast_2d(np.asarray(others, dtype=np.float64)).reshape(-1, config.dim)
    shares = config.required_shares if noise_in_sum is None else int(noise_in_sum)

    def mechanism(x: Any, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        target = np.broadcast_to(np.asarray(x, dtype=np.float64).reshape(1, config.dim), (n, config.dim))
        total = encode_updates(target, config, rng)
        for row in rest:
            total = total + encode_updates(np.broadcast_to(row, (n, config.dim)), config, rng)
        total = total + noise_shares(config, shares, rng, rows=n)
        return np.mod(total, config.modulus)

    return mechanism
