"""Transport frames of the SEAL backends (CKKS, BFV): many SEAL blobs in one message.

A frame is ``magic | u32 header length | JSON header | blobs`` (the magic
names the scheme: ``SQCKKS1``, ``SQBFV1``); the header
names the frame kind and the length of every blob, and :func:`unframe` checks
all of it, raising :class:`~secquant.errors.ConfigError` for anything malformed.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from typing import Any

from secquant.errors import ConfigError

__all__ = ["BFV_MAGIC", "CKKS_MAGIC", "WRITER_BYTES_PER_BLOB", "FrameWriter", "frame", "unframe"]

CKKS_MAGIC = b"SQCKKS1\n"
BFV_MAGIC = b"SQBFV1\n"
_SCHEMES = {CKKS_MAGIC: "CKKS", BFV_MAGIC: "BFV"}
_MAX_HEADER = 1 << 20
#: Decimal digits reserved per blob length by :class:`FrameWriter` (blobs below 10**12 bytes).
_LENGTH_DIGITS = 12
#: Header bytes per blob of a frame written by :class:`FrameWriter` (its length and a comma).
WRITER_BYTES_PER_BLOB = _LENGTH_DIGITS + 1


def _header(kind: str, meta: dict[str, Any], lengths: list[int]) -> bytes:
    return json.dumps({"kind": kind, "meta": meta, "lengths": lengths}, separators=(",", ":")).encode()


def frame(kind: str, meta: dict[str, Any], blobs: Sequence[bytes | memoryview], magic: bytes = CKKS_MAGIC) -> bytes:
    """Frame blobs with a JSON header (no digest: a frame is transport, not an artifact)."""
    header = _header(kind, meta, [len(b) for b in blobs])
    return b"".join([magic, struct.pack("<I", len(header)), header, *blobs])


class FrameWriter:
    """The frame of :func:`frame`, written blob by blob as each is made.

    A throughput request can be gigabytes; holding its blobs and then joining
    them needs twice its size.  The writer reserves the header's room up front
    (``count`` lengths of :data:`_LENGTH_DIGITS` digits), appends each blob to
    one growing buffer, and on :meth:`finish` writes the real header padded with
    spaces (JSON allows trailing whitespace; :func:`unframe` reads it unchanged)
    and hands over that buffer without a copy.

    Args:
        kind: Frame kind.
        meta: Header metadata (JSON-ready).
        count: Number of blobs that will be added.
        magic: The scheme's magic.
        size_hint: An upper bound on the bytes of all blobs, when known (packed
            ciphertexts: ``packed_size`` each): the buffer is made that large at
            once and cut to size at the end, so it is never copied while it grows.
    """

    def __init__(self, kind: str, meta: dict[str, Any], count: int, magic: bytes = CKKS_MAGIC,
                 size_hint: int | None = None) -> None:
        self._kind, self._meta, self._count, self._magic = kind, dict(meta), int(count), magic
        self._room = len(_header(kind, self._meta, [10**_LENGTH_DIGITS - 1] * self._count))
        self._lengths: list[int] = []
        self._buf: io.BytesIO | None = io.BytesIO()
        head = magic + struct.pack("<I", self._room) + b" " * self._room
        if size_hint:
            self._buf.seek(len(head) + int(size_hint))
            self._buf.write(b"\0")  # one allocation of the whole frame
            self._buf.seek(0)
        self._buf.write(head)

    def add(self, blob: bytes | memoryview) -> None:
        """Append one blob.

        Raises:
            ConfigError: more blobs than ``count``, a blob of 10**12 bytes or more, or after :meth:`finish`.
        """
        if self._buf is None or len(self._lengths) >= self._count or len(blob) >= 10**_LENGTH_DIGITS:
            raise ConfigError("FrameWriter: blob past the announced count or size, or frame already finished")
        self._buf.write(blob)
        self._lengths.append(len(blob))

    def finish(self) -> bytes:
        """The frame's bytes (the writer is spent).

        Raises:
            ConfigError: fewer blobs than ``count`` were added, or already finished.
        """
        if self._buf is None or len(self._lengths) != self._count:
            raise ConfigError(f"FrameWriter: {len(self._lengths)} blobs added, {self._count} announced")
        buf, self._buf = self._buf, None
        buf.truncate(buf.tell())  # the reserved room not used (a shrink in place)
        buf.seek(len(self._magic) + 4)
        buf.write(_header(self._kind, self._meta, self._lengths).ljust(self._room, b" "))
        return buf.getvalue()  # CPython hands over its buffer (resized in place) when nothing else shares it


def unframe(payload: bytes, kind: str, magic: bytes = CKKS_MAGIC) -> tuple[dict[str, Any], list[memoryview]]:
    """Split a frame made by :func:`frame` with the same ``magic`` into views of its blobs (no copies).

    Raises:
        ConfigError: not bytes, wrong magic or kind, or lengths that do not add up.
    """
    scheme = _SCHEMES.get(magic, "SEAL")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ConfigError(f"a {scheme} payload must be bytes, got {type(payload).__name__}")
    data = payload if isinstance(payload, bytes) else bytes(payload)
    if not data.startswith(magic) or len(data) < len(magic) + 4:
        raise ConfigError(f"not a secquant {scheme} {kind} (bad magic); it was not made by this backend")
    (hlen,) = struct.unpack("<I", data[len(magic):len(magic) + 4])
    start = len(magic) + 4
    if hlen > _MAX_HEADER or start + hlen > len(data):
        raise ConfigError(f"malformed {scheme} {kind}: header length {hlen} does not fit the payload")
    try:
        header = json.loads(data[start:start + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"malformed {scheme} {kind}: header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("kind") != kind:
        found = header.get("kind") if isinstance(header, dict) else None
        raise ConfigError(f"expected a {scheme} {kind}, got {found!r}")
    lengths = header.get("lengths")
    meta = header.get("meta")
    if (not isinstance(lengths, list) or not all(isinstance(n, int) and n >= 0 for n in lengths)
            or not isinstance(meta, dict)):
        raise ConfigError(f"malformed {scheme} {kind}: header lacks meta or blob lengths")
    pos = start + hlen
    if pos + sum(lengths) != len(data):
        raise ConfigError(f"malformed {scheme} {kind}: blobs hold {len(data) - pos} bytes, header says {sum(lengths)} "
                          "(truncated or padded)")
    view = memoryview(data)  # slices share the payload's memory: a batch can be gigabytes
    blobs = []
    for n in lengths:
        blobs.append(view[pos:pos + n])
        pos += n
    return meta, blobs
