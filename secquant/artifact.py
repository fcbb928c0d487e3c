"""Versioned, typed, digest-checked artifacts: one ``.npz`` file, no pickle.

Layout: every array is an npz entry (int64/float64/uint8...), and the entry
``__header__`` holds UTF-8 JSON::

    {"type": "...", "version": N, "meta": {...}, "digest": "<sha256 hex>"}

Arrays of integers past int64 are stored in ``meta["__bigints__"]`` as decimal
strings.  The digest is SHA-256 over the canonical JSON of type, version and
meta, then each array's name, dtype, shape and bytes in name order.  Loading
refuses a wrong type, an unknown version and any digest mismatch; writing goes
to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError, IntegrityError

__all__ = ["encode_artifact", "read_artifact", "write_artifact", "write_bytes_atomic"]

_HEADER = "__header__"
_BIGINTS = "__bigints__"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _digest(kind: str, version: int, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> str:
    h = hashlib.sha256(_canonical({"type": kind, "version": version, "meta": meta}))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(_canonical([name, a.dtype.str, list(a.shape)]))
        h.update(a.tobytes())
    return h.hexdigest()


def _split_bigints(arrays: dict[str, NDArray[Any]]) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    plain: dict[str, NDArray[Any]] = {}
    big: dict[str, Any] = {}
    for name, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype == object:
            ints = [int(v) for v in a.reshape(-1)]
            if all(-(2**63) <= v < 2**63 for v in ints):
                plain[name] = np.asarray(ints, dtype=np.int64).reshape(a.shape)
            else:
                big[name] = {"shape": list(a.shape), "values": [str(v) for v in ints]}
        else:
            plain[name] = a
    return plain, big


def encode_artifact(
    kind: str,
    version: int,
    meta: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
) -> bytes:
    """Encode an artifact in memory (the bytes :func:`write_artifact` writes).

    Raises:
        ArtifactError: metadata is not JSON-serializable or a name is reserved.
    """
    if _HEADER in arrays:
        raise ArtifactError(f"array name {_HEADER!r} is reserved")
    plain, big = _split_bigints(arrays)
    full_meta = dict(meta)
    if big:
        full_meta[_BIGINTS] = big
    try:
        digest = _digest(kind, version, full_meta, plain)
        header = _canonical({"type": kind, "version": version, "meta": full_meta, "digest": digest})
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"artifact metadata is not JSON-serializable: {exc}") from exc
    buf = io.BytesIO()
    np.savez(buf, **{_HEADER: np.frombuffer(header, dtype=np.uint8)}, **plain)
    return buf.getvalue()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_artifact(
    path: str | os.PathLike[str],
    kind: str,
    version: int,
    meta: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
    *,
    mode: int = 0o644,
) -> Path:
    """Write an artifact atomically.

    Args:
        path: Destination file.
        kind: Artifact type, e.g. ``"secquant.QuantizedModel"``.
        version: Format version of that type.
        meta: JSON-serializable metadata.
        arrays: Named arrays; object arrays must hold Python ints.
        mode: File permissions (use 0o600 for secret material).

    Raises:
        ArtifactError: metadata is not JSON-serializable or a name is reserved.
    """
    return write_bytes_atomic(path, encode_artifact(kind, version, meta, arrays), mode=mode)


def _refuse_compressed(source: Any) -> None:
    """Refuse archives with compressed entries: inflating one could exhaust memory.

    We only ever write stored (uncompressed) entries, so an artifact can never
    expand beyond its own size when read.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip archive: np.load reports it below
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if packed:
        raise ArtifactError(f"artifact entries {packed[:3]} are compressed; secquant artifacts are never compressed")


_EOCD = b"PK\x05\x06"  # zip end-of-central-directory record: 22 bytes, last in every archive we write


def _refuse_truncated(source: Any) -> None:
    """Refuse a zip archive that does not end with its end-of-central-directory record (truncated or padded).

    ``zipfile`` searches backwards for that record and tolerates a damaged
    tail; we write no archive comment, so ours end exactly with it.
    """
    if hasattr(source, "getbuffer"):
        buf = source.getbuffer()
        head, tail = bytes(buf[:4]), bytes(buf[-22:])
    else:
        with open(source, "rb") as fh:
            head = fh.read(4)
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 22))
            tail = fh.read()
    if head != b"PK\x03\x04":
        return  # not a zip archive: np.load reports it
    if len(tail) != 22 or not tail.startswith(_EOCD) or tail[20:22] != b"\x00\x00":
        raise ArtifactError("cannot read artifact: the archive is truncated or has bytes after its end")


def read_artifact(
    path: str | os.PathLike[str] | bytes,
    kind: str,
    versions: tuple[int, ...] = (1,),
) -> tuple[int, dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and verify an artifact written by :func:`write_artifact`.

    Args:
        path: File path, or the file's bytes.
        kind: The type the caller expects.
        versions: Format versions the caller can read.

    Returns:
        (version, meta, arrays), with big-integer arrays restored as object arrays.

    Raises:
        ArtifactError: not an artifact, wrong type, or unsupported version.
        IntegrityError: the digest does not match the content.
    """
    source: Any = io.BytesIO(path) if isinstance(path, bytes) else path
    _refuse_compressed(source)
    _refuse_truncated(source)
    try:
        loaded = np.load(source, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ArtifactError("not a secquant artifact (a bare array, not an .npz archive)")
        with loaded as npz:
            if _HEADER not in npz.files:
                raise ArtifactError("not a secquant artifact (no header)")
            header = json.loads(npz[_HEADER].tobytes().decode())
            arrays = {n: npz[n] for n in npz.files if n != _HEADER}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"cannot read artifact: {exc}") from exc
    if not isinstance(header, dict) or header.get("type") != kind:
        found = header.get("type") if isinstance(header, dict) else None
        raise ArtifactError(f"expected an artifact of type {kind!r}, found {found!r}")
    version = header.get("version")
    if version not in versions:
        raise ArtifactError(f"{kind} format version {version!r} is not supported (supported: {list(versions)})")
    meta = header.get("meta")
    digest = header.get("digest")
    if not isinstance(meta, dict) or not isinstance(digest, str):
        raise ArtifactError("artifact header lacks meta or digest")
    expected = _digest(kind, version, meta, arrays)
    if not hmac.compare_digest(expected, digest):
        raise IntegrityError(
            f"{kind} digest mismatch: the file was modified or truncated after it was written "
            f"(expected {expected[:16]}..., recorded {digest[:16]}...)"
        )
    for name, spec in meta.pop(_BIGINTS, {}).items():
        values = np.array([int(v) for v in spec["values"]], dtype=object)
        arrays[name] = values.reshape(spec["shape"])
    return int(version), meta, arrays
