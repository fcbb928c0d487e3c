"""Bytes on the wire for the SEAL backends (CKKS, BFV): SEAL objects and framed batches.

SEAL's Python binding saves and loads through file paths only, so objects pass
through a private temporary directory (``/dev/shm`` when present).

A frame is ``magic | u32 header length | JSON header | blobs`` (the magic
names the scheme: ``SQCKKS1``, ``SQBFV1``); the header
names the frame kind and the length of every blob, and :func:`unframe` checks
all of it, raising :class:`~secquant.errors.ConfigError` for anything malformed.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError

__all__ = ["frame", "load_seal", "save_seal", "unframe"]

MAGIC = b"SQCKKS1\n"
BFV_MAGIC = b"SQBFV1\n"
_SCHEMES = {MAGIC: "CKKS", BFV_MAGIC: "BFV"}
_MAX_HEADER = 1 << 20


def _tmpdir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def save_seal(objs: list[Any]) -> list[bytes]:
    """Serialize SEAL objects (anything with ``save(path)``) to bytes."""
    out = []
    with tempfile.TemporaryDirectory(dir=_tmpdir()) as tmp:
        path = str(Path(tmp) / "obj")
        for obj in objs:
            obj.save(path)
            out.append(Path(path).read_bytes())
    return out


def load_seal(blobs: list[bytes], make: Callable[[], Any], context: Any, what: str) -> list[Any]:
    """Deserialize SEAL objects made by ``make()`` under ``context``.

    Raises:
        ConfigError: a blob is not a valid object for these parameters.
    """
    out = []
    with tempfile.TemporaryDirectory(dir=_tmpdir()) as tmp:
        path = str(Path(tmp) / "obj")
        for blob in blobs:
            Path(path).write_bytes(blob)
            obj = make()
            try:
                obj.load(context, path)
            except (ValueError, RuntimeError, TypeError) as exc:
                raise ConfigError(f"malformed {what}: SEAL rejects it ({exc}); was it made under other parameters?") from exc
            out.append(obj)
    return out


def frame(kind: str, meta: dict[str, Any], blobs: list[bytes], magic: bytes = MAGIC) -> bytes:
    """Frame blobs with a JSON header (no digest: a frame is transport, not an artifact)."""
    header = json.dumps({"kind": kind, "meta": meta, "lengths": [len(b) for b in blobs]},
                        separators=(",", ":")).encode()
    return b"".join([magic, struct.pack("<I", len(header)), header, *blobs])


def unframe(payload: bytes, kind: str, magic: bytes = MAGIC) -> tuple[dict[str, Any], list[memoryview]]:
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
