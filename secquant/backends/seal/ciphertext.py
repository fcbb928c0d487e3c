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

:func:`pack` is secquant's wire form of a request ciphertext, seeded or not:
every residue row bit-packed at the width of its largest value (the prime's
bit length, with overwhelming probability), instead of 8 bytes per residue
that zstd shrinks only to about 6.6 (its literal coder spends at least one bit
on every zero byte).  Its size is known before any key exists
(:func:`packed_size`); :func:`unpack` restores SEAL's uncompressed blob.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = [
    "FRAME_OVERHEAD",
    "PACKED_MAGIC",
    "RESPONSE_HEADER",
    "CiphertextMeta",
    "PackedRows",
    "Residues",
    "RowResidues",
    "Transfer",
    "check_fresh",
    "from_bytes",
    "pack",
    "packed_size",
    "read_fresh",
    "read_fresh_rows",
    "to_bytes",
    "unpack",
]

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
    if bytes(blob[:4]) == PACKED_MAGIC:
        blob = unpack(blob)
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


class Transfer(enum.Enum):
    """What a request ciphertext is made for: fewer bytes on the wire, or the fastest evaluation.

    * ``BYTES``: packed seeded ciphertexts (:func:`pack`), one input ciphertext whenever
      the layout allows (CKKS: no client rotations, client gathering only into one
      ciphertext), and CKKS's narrowest primes;
    * ``BALANCED`` (default): packed seeded ciphertexts, no client rotations (the server
      makes the baby steps), client gathering (CKKS: each patch once) only where it at
      least halves the server's rotations;
    * ``LATENCY``: SEAL's own zstd blobs, whole in THROUGHPUT (the server reads their
      residues straight from the wire), and the client sends its baby-step rotated
      copies (CKKS) so that the server makes no rotation at the top level.
    """

    BYTES = "bytes"
    BALANCED = "balanced"
    LATENCY = "latency"


#: Bytes a request frame adds to its ciphertexts besides 8 per ciphertext (magic, JSON header), about.
FRAME_OVERHEAD = 256
#: Bytes of a SEAL ciphertext blob besides its residues (outer header, metadata, DynArray header and count).
RESPONSE_HEADER = 16 + 73 + 16 + 8
#: First bytes of a packed ciphertext (:func:`pack`).
PACKED_MAGIC = b"SQP1"
_PACKED = struct.Struct("<4sBBI")  # magic, SEAL major, minor, prefix length
#: Bytes SEAL writes after a seeded ciphertext's first polynomial (PRNG type and seed), SEAL 4.x.
SEED_BYTES = 81
#: Members before the residues: metadata, the DynArray header and count.
_PREFIX = _META.size + _HEADER.size + _COUNT.size


def _members(blob: bytes | memoryview) -> tuple[bytes | memoryview, tuple[int, int], int, int, int]:
    """SEAL's raw members, version, N, residue rows and the offset of the residues."""
    raw, version = _payload(blob)
    if len(raw) < _PREFIX:
        raise ConfigError("a SEAL ciphertext blob is truncated")
    size, n, levels = _META.unpack_from(raw)[5:8]
    (count,) = _COUNT.unpack_from(raw, _META.size + _HEADER.size)
    if n < 1 or count % n or not 0 < count // n <= size * levels or 8 * count > len(raw) - _PREFIX:
        raise ConfigError("a SEAL ciphertext blob is malformed or truncated")
    return raw, version, n, count // n, _PREFIX


def pack(blob: bytes | memoryview) -> bytes:
    """The packed wire form of a SEAL ciphertext blob (seeded or not, any compression).

    Layout: ``SQP1 | major u8 | minor u8 | prefix length u32 | prefix (metadata, DynArray header, count)
    | one width byte per residue row | per row: the w // 8 low bytes of every residue, then their next
    w % 8 bits packed little-endian (``ceil(N w / 8)`` bytes for width w) | the rest
    (a seeded ciphertext's seed)``.

    Raises:
        ConfigError: the blob is not a SEAL ciphertext.
    """
    raw, (major, minor), n, rows, off = _members(blob)
    data = np.frombuffer(raw, dtype="<u8", count=rows * n, offset=off).reshape(rows, n)
    widths = [max(int(r.max()).bit_length(), 1) for r in data]
    parts = [_PACKED.pack(PACKED_MAGIC, major, minor, off), bytes(raw[:off]), bytes(widths)]
    for row, w in zip(data, widths):
        octets = row.astype("<u8").view(np.uint8).reshape(n, 8)
        parts.append(octets[:, :w // 8].tobytes())  # whole low bytes, then the w % 8 bits left
        bits = np.unpackbits(octets[:, w // 8:w // 8 + 1], axis=1, bitorder="little")[:, :w % 8]
        parts.append(np.packbits(bits.ravel(), bitorder="little").tobytes())
    parts.append(bytes(raw[off + 8 * rows * n:]))
    return b"".join(parts)


def _packed_layout(view: memoryview) -> tuple[tuple[int, int], bytes, int, list[int], int]:
    """SEAL version, SEAL prefix, N, row widths and the offset of the first row of a packed blob.

    Raises:
        ConfigError: not a packed ciphertext, an impossible shape or malformed widths.
    """
    if len(view) < _PACKED.size + _PREFIX:
        raise ConfigError("a packed ciphertext is truncated")
    magic, major, minor, off = _PACKED.unpack_from(view)
    if magic != PACKED_MAGIC or off != _PREFIX:
        raise ConfigError("not a packed secquant ciphertext")
    prefix = bytes(view[_PACKED.size:_PACKED.size + off])
    size, n, levels = _META.unpack_from(prefix)[5:8]
    (count,) = _COUNT.unpack_from(prefix, _META.size + _HEADER.size)
    if n < 1 or count % n or not 0 < count // n <= size * levels or 8 * count > _MAX_RAW:
        raise ConfigError("a packed ciphertext states an impossible shape")
    rows, pos = count // n, _PACKED.size + off
    widths = list(view[pos:pos + rows])
    if len(widths) != rows or not all(1 <= w <= 64 for w in widths):
        raise ConfigError("a packed ciphertext has malformed row widths")
    return (major, minor), prefix, n, widths, pos + rows


def _row_bytes(n: int, w: int) -> int:
    """Bytes of one packed row of ``n`` residues of ``w`` bits."""
    return n * (w // 8) - (-n * (w % 8) // 8)


def _row_octets(view: memoryview, pos: int, n: int, w: int) -> NDArray[np.uint8]:
    """The ``(n, 8)`` little-endian octets of the packed row of width ``w`` at ``pos``.

    Raises:
        ConfigError: the row runs past the end of ``view``.
    """
    whole = n * (w // 8)
    if pos + _row_bytes(n, w) > len(view):
        raise ConfigError("a packed ciphertext is truncated")
    octets = np.zeros((n, 8), dtype=np.uint8)
    octets[:, :w // 8] = np.frombuffer(view[pos:pos + whole], dtype=np.uint8).reshape(n, w // 8)
    if w % 8:
        bits = np.unpackbits(np.frombuffer(view[pos + whole:pos + _row_bytes(n, w)], dtype=np.uint8),
                             count=n * (w % 8), bitorder="little").reshape(n, w % 8)
        octets[:, w // 8] = np.packbits(bits, axis=1, bitorder="little")[:, 0]
    return octets


def packed_size(n: int, prime_bits: Sequence[int], seeded: bool) -> int:
    """Bytes of :func:`pack` of a fresh ciphertext over primes of ``prime_bits`` bits in degree ``n``.

    Exact when every row's largest residue has its prime's bit length (probability
    about 1 - 2**-n per row for a prime in the upper half of its binade), else an upper bound.
    """
    rows = list(prime_bits) if seeded else 2 * list(prime_bits)
    return (_PACKED.size + _PREFIX + len(rows) + sum(n * (b // 8) - (-n * (b % 8) // 8) for b in rows)
            + (SEED_BYTES if seeded else 0))


def unpack(blob: bytes | memoryview) -> bytes:
    """SEAL's uncompressed blob of a :func:`pack`-ed ciphertext (SEAL's ``load`` then validates it).

    Raises:
        ConfigError: malformed, or larger than the largest ciphertext.
    """
    view = memoryview(blob)
    (major, minor), prefix, n, widths, pos = _packed_layout(view)
    out = [prefix]
    for w in widths:
        out.append(_row_octets(view, pos, n, w).tobytes())
        pos += _row_bytes(n, w)
    out.append(bytes(view[pos:]))
    if len(out[-1]) > 4096:
        raise ConfigError("a packed ciphertext carries unexpected trailing bytes")
    raw = b"".join(out)
    return _HEADER.pack(_MAGIC, _HEADER.size, major, minor, _NONE, 0, _HEADER.size + len(raw)) + raw


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


class PackedRows:
    """The residues of a packed fresh ciphertext, decoded one row (polynomial, prime) at a time.

    Stands in for the ``(size, L, N)`` array of :data:`Residues` where a reader
    walks rows in turn (:class:`~secquant.backends.seal.rns.IntegerMap`): ``shape``
    and ``[s, level, columns]``.  The last row decoded is kept, so a batch of k
    inputs holds k rows at a time instead of k whole ciphertexts.  Each row is
    checked below its prime when it is decoded.
    """

    def __init__(self, view: memoryview, meta: CiphertextMeta, offsets: list[tuple[int, int]],
                 moduli: Sequence[int], what: str) -> None:
        self._view, self.meta, self._offsets = view, meta, offsets
        self._moduli, self._what = [int(q) for q in moduli], what
        self._row: tuple[int, NDArray[np.uint64]] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.meta.size, self.meta.levels, self.meta.poly_degree

    def __getitem__(self, where: tuple[int, int, Any]) -> NDArray[np.uint64]:
        s, level, columns = where
        r = s * self.meta.levels + level
        if self._row is None or self._row[0] != r:
            pos, w = self._offsets[r]
            row = _row_octets(self._view, pos, self.meta.poly_degree, w).view("<u8").reshape(-1).astype(np.uint64)
            if np.any(row >= np.uint64(self._moduli[level])):
                raise ConfigError(f"{self._what} has a residue at or above its prime")
            self._row = (r, row)
        return self._row[1][columns]


#: A fresh input as its metadata and residues, whole or row by row (:func:`read_fresh_rows`).
RowResidues = tuple[CiphertextMeta, "NDArray[np.uint64] | PackedRows"]


def read_fresh_rows(blob: bytes | memoryview, parms_id: Sequence[int], moduli: Sequence[int], ntt_form: bool,
                    what: str) -> RowResidues:
    """:func:`read_fresh`, lazily for a packed blob: its metadata and layout are checked now, each row's
    residues when the row is read (:class:`PackedRows`); other blobs are parsed whole.

    Raises:
        ConfigError: malformed, seeded, not fresh at this level, or (on reading) a residue not below its prime.
    """
    view = memoryview(blob)
    if bytes(view[:4]) != PACKED_MAGIC:
        return read_fresh(blob, parms_id, moduli, ntt_form, what)
    version, prefix, n, widths, pos = _packed_layout(view)
    *pid, ntt, size, n_meta, levels, scale, corr = _META.unpack_from(prefix)
    meta = CiphertextMeta(tuple(pid), bool(ntt), int(size), int(n_meta), int(levels), float(scale), int(corr),
                          version)
    if len(widths) != size * levels or n != n_meta:
        raise ConfigError("a SEAL ciphertext is seeded or truncated; send unseeded ciphertexts")
    check_fresh(meta, np.zeros((size, levels, 0), dtype=np.uint64), list(parms_id), list(moduli), ntt_form, what)
    offsets = []
    for r, w in enumerate(widths):
        if w > int(moduli[r % levels]).bit_length():
            raise ConfigError(f"{what} has a residue at or above its prime")
        offsets.append((pos, w))
        pos += _row_bytes(n, w)
    if pos > len(view) or len(view) - pos > 4096:
        raise ConfigError("a packed ciphertext is truncated or carries unexpected trailing bytes")
    return meta, PackedRows(view, meta, offsets, moduli, what)
