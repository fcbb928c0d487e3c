"""Transport frames of the SEAL backends (CKKS, BFV): many SEAL blobs in one message.

A frame is ``magic | u32 header length | JSON header | blobs`` (the magic
names the scheme: ``SQCKKS1``, ``SQBFV1``); the header
names the frame kind and the length of every blob, and :func:`unframe` checks
all of it, raising :class:`~secquant.errors.ConfigError` for anything malformed.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from secquant.errors import ConfigError

__all__ = ["BFV_MAGIC", "CKKS_MAGIC", "frame", "unframe"]

CKKS_MAGIC = b"SQCKKS1\n"
BFV_MAGIC = b"SQBFV1\n"
_SCHEMES = {CKKS_MAGIC: "CKKS", BFV_MAGIC: "BFV"}
_MAX_HEADER = 1 << 20


def frame(kind: str, meta: dict[str, Any], blobs: list[bytes], magic: bytes = CKKS_MAGIC) -> bytes:
    """Frame blobs with a JSON header (no digest: a frame is transport, not an artifact)."""
    header = json.dumps({"kind": kind, "meta": meta, "lengths": [len(b) for b in blobs]},
                        separators=(",", ":")).encode()
    return b"".join([magic, struct.pack("<I", len(header)), header, *blobs])


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
