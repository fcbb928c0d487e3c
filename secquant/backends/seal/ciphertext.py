"""SEAL's ciphertext serialization, read and written with numpy.

TenSEAL's binding gives no access to a ciphertext's memory (``data()``
returns a coefficient, not an address), so residues travel through SEAL's own
byte format (SEAL 4.x, ``Ciphertext::save_members``)::

    SEALHeader (16 bytes: magic 0xA15E, header size, version, compression, total size)
    payload (compressed with zstd or zlib, or not at all):
        parms_id 4 x u64 | is_ntt_form u8 | size u64 | N u64 | L u64 | scale f64
        | correction_factor u64 | DynArray: SEALHeader, count u64, count x u64

Only unseeded ciphertexts are read (a seeded one stores a PRNG seed instead
of its second polynomial; SEAL expands it on load).  Writing produces an
uncompressed blob that SEAL's ``load`` validates as usual (every residue
below its prime, metadata matching the context).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = ["CiphertextMeta", "Residues", "check_fresh", "from_bytes", "read_fresh", "to_bytes"]

_MAGIC = 0xA15E
_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compression, reserved, total size
_META = struct.Struct("<4QBQQQdQ")  # parms_id, is_ntt_form, size, N, L, scale, correction factor
_COUNT = struct.Struct("<Q")
_NONE, _ZLIB, _ZSTD = 0, 1, 2
#: Largest decompressed ciphertext accepted (N=32768, 16 primes, size 3: 24 MiB), against decompression bombs.
_MAX_RAW = 2 * 3 * 16 * 32768 * 8


@dataclass(frozen=True)
class CiphertextMeta:
    """Everything in a serialized ciphertext except its residues."""

    parms_id: tuple[int, int, int, int]
    is_ntt_form: bool
    size: int
    poly_degree: int
    levels: int
    scale: float
    correction_factor: int
    version: tuple[int, int]


#: A ciphertext as its metadata and residues ``(size, L, N)``.
Residues = tuple[CiphertextMeta, NDArray[np.uint64]]


def _payload(blob: bytes | memoryview) -> tuple[bytes | memoryview, tuple[int, int]]:
    if len(blob) < _HEADER.size:
        raise ConfigError("a SEAL ciphertext blob is shorter than its header")
    magic, hsize, major, minor, compression, _, total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or hsize != _HEADER.size or total != len(blob):
        raise ConfigError("not a SEAL ciphertext blob (bad header)")
    body = blob[_HEADER.size:]
    if compression == _NONE:
        return body, (major, minor)
    if compression == _ZLIB:
        d = zlib.decompressobj()
        raw = d.decompress(body, _MAX_RAW)
        if d.unconsumed_tail:
            raise ConfigError("a SEAL ciphertext decompresses past the largest ciphertext size")
        return raw, (major, minor)
    if compression == _ZSTD:
        import zstandard

        try:
            return zstandard.ZstdDecompressor().decompress(body, max_output_size=_MAX_RAW), (major, minor)
        except zstandard.ZstdError as exc:
            raise ConfigError(f"a SEAL ciphertext does not decompress: {exc}") from exc
    raise ConfigError(f"unknown SEAL compression mode {compression}")


def from_bytes(blob: bytes | memoryview) -> tuple[CiphertextMeta, NDArray[np.uint64]]:
    """Metadata and residues ``(size, L, N)`` of a serialized, unseeded ciphertext.

    Raises:
        ConfigError: the blob is malformed, seeded, or not a ciphertext.
    """
    raw, version = _payload(blob)
    if len(raw) < _META.size + _HEADER.size + _COUNT.size:
        raise ConfigError("a SEAL ciphertext blob is truncated")
    *pid, ntt, size, n, levels, scale, corr = _META.unpack_from(raw)
    off = _META.size + _HEADER.size
    (count,) = _COUNT.unpack_from(raw, off)
    off += _COUNT.size
    if count != size * n * levels or len(raw) != off + 8 * count:
        raise ConfigError("a SEAL ciphertext is seeded or truncated; send unseeded ciphertexts")
    data = np.frombuffer(raw, dtype="<u8", count=count, offset=off).reshape(size, levels, n)
    meta = CiphertextMeta(tuple(pid), bool(ntt), int(size), int(n), int(levels), float(scale), int(corr), version)
    return meta, data


def to_bytes(meta: CiphertextMeta, data: NDArray[np.uint64]) -> bytes:
    """An uncompressed SEAL blob of ``data`` (shape ``(size, L, N)``) with ``meta``'s other fields.

    Raises:
        ConfigError: the shape disagrees with the metadata.
    """
    if data.shape != (meta.size, meta.levels, meta.poly_degree):
        raise ConfigError(f"residues of shape {data.shape} do not match the metadata")
    body = np.ascontiguousarray(data, dtype="<u8").tobytes()
    major, minor = meta.version
    inner = _HEADER.pack(_MAGIC, _HEADER.size, major, minor, _NONE, 0, _HEADER.size + _COUNT.size + len(body))
    members = (_META.pack(*meta.parms_id, int(meta.is_ntt_form), meta.size, meta.poly_degree, meta.levels,
                          meta.scale, meta.correction_factor) + inner + _COUNT.pack(data.size) + body)
    return _HEADER.pack(_MAGIC, _HEADER.size, major, minor, _NONE, 0, _HEADER.size + len(members)) + members


def check_fresh(meta: CiphertextMeta, data: NDArray[np.uint64], parms_id: Sequence[int], moduli: Sequence[int],
                ntt_form: bool, what: str) -> None:
    """Check a parsed ciphertext as SEAL's ``load`` would, plus freshness (size 2, top level).

    Raises:
        ConfigError: another level, size or form, or a residue at or above its prime.
    """
    if (list(meta.parms_id) != list(parms_id) or meta.size != 2 or meta.is_ntt_form != ntt_form
            or meta.levels != len(moduli)):
        raise ConfigError(f"{what} is not a fresh encryption at the top level")
    if np.any(data >= np.array(moduli, dtype=np.uint64)[None, :, None]):
        raise ConfigError(f"{what} has a residue at or above its prime")


def read_fresh(blob: bytes | memoryview, parms_id: Sequence[int], moduli: Sequence[int], ntt_form: bool,
               what: str) -> Residues:
    """Parse a fresh input ciphertext from the wire and check it as SEAL's ``load`` would.

    Raises:
        ConfigError: malformed, seeded, not fresh at this level, or a residue not below its prime.
    """
    meta, data = from_bytes(blob)
    check_fresh(meta, data, list(parms_id), list(moduli), ntt_form, what)
    return meta, data
