"""Versioned, typed, digest-checked artifacts: one ``.npz`` file, no pickle.

Layout: every array is an npz entry (int64/float64/uint8...), and the entry
``__header__`` holds UTF-8 JSON::

    {"type": "...", "version": N, "meta": {...}, "digest": "<sha256 hex>"}

Arrays of integers past int64 are stored in ``meta["__bigints__"]`` as decimal
strings.  The digest is SHA-256 over the canonical JSON of type, version and
meta, then each array's name, dtype, shape and bytes in name order.  Loading
refuses a wrong type, an unknown version and any digest mismatch; writing goes
to a temporary file that replaces the target only when complete.

A digest only catches accidents: whoever can write the file can recompute it.
Two optional layers protect against people (both need ``cryptography``):

* ``encrypt_with=KEY``: the artifact is sealed under AES-256-GCM
  (:mod:`secquant.sealing`); its type, version, array shapes, nonce and key id
  stay readable and are authenticated.
* ``sign_with=PRIVATE_KEY``: the bytes (sealed or not) are wrapped in an
  Ed25519-signed envelope (:mod:`secquant.signing`).  ``read_artifact(...,
  trusted=[public keys])`` verifies the signature before anything else is
  parsed, and refuses unsigned files, unknown signers and bad signatures.

Layout on disk: ``[signed envelope [sealed body [npz]]]``; a plain ``.npz``
written by earlier versions still loads when no ``trusted`` key is given.
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

__all__ = [
    "encode_artifact",
    "open_artifact",
    "protect_artifact",
    "read_artifact",
    "write_artifact",
    "write_bytes_atomic",
]

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
    *,
    sign_with: Any = None,
    encrypt_with: Any = None,
) -> bytes:
    """Encode an artifact in memory (the bytes :func:`write_artifact` writes).

    Args:
        kind, version, meta, arrays: As :func:`write_artifact`.
        sign_with: Ed25519 private key (PEM path, PEM bytes or key object) to sign with, or None.
        encrypt_with: Model key (:class:`~secquant.sealing.ModelKey`, key file path or 32 bytes), or None.

    Raises:
        ArtifactError: metadata is not JSON-serializable or a name is reserved.
        KeyMaterialError: a key file is readable by others.
        ConfigError: a key is malformed.
    """
    plain = _encode_plain(kind, version, meta, arrays)
    if sign_with is None and encrypt_with is None:
        return plain
    return protect_artifact(plain, sign_with=sign_with, encrypt_with=encrypt_with)


def _encode_plain(kind: str, version: int, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> bytes:
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


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, exclusive: bool = False
) -> Path:
    """Write ``data`` to ``path`` through a temporary file, so a crash never leaves half a file.

    The temporary file is created with ``mode`` before any byte is written, so the
    data is never readable with looser permissions.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (it is hard-linked, never replaced).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def write_artifact(
    path: str | os.PathLike[str],
    kind: str,
    version: int,
    meta: dict[str, Any],
    arrays: dict[str, NDArray[Any]],
    *,
    mode: int = 0o644,
    sign_with: Any = None,
    encrypt_with: Any = None,
) -> Path:
    """Write an artifact atomically.

    Args:
        path: Destination file.
        kind: Artifact type, e.g. ``"secquant.QuantizedModel"``.
        version: Format version of that type.
        meta: JSON-serializable metadata.
        arrays: Named arrays; object arrays must hold Python ints.
        mode: File permissions (use 0o600 for secret material).
        sign_with: Ed25519 private key to sign with (see :func:`encode_artifact`), or None.
        encrypt_with: Model key to encrypt with (see :func:`encode_artifact`), or None.

    Raises:
        ArtifactError: metadata is not JSON-serializable or a name is reserved.
        KeyMaterialError, ConfigError: a key is unusable.
    """
    data = encode_artifact(kind, version, meta, arrays, sign_with=sign_with, encrypt_with=encrypt_with)
    return write_bytes_atomic(path, data, mode=mode)


def protect_artifact(data: bytes, *, sign_with: Any = None, encrypt_with: Any = None) -> bytes:
    """Encrypt and/or sign the bytes of a plain artifact (e.g. a client spec before it is published).

    Encryption comes first, so a reader checks the signature before decrypting.

    Raises:
        ArtifactError: ``data`` is not a plain artifact.
        KeyMaterialError, ConfigError: a key is unusable.
    """
    out = bytes(data)
    if encrypt_with is not None:
        from secquant.sealing import seal

        kind, version, shapes = _describe(out)
        out = seal(out, encrypt_with, kind=kind, version=version, arrays=shapes)
    if sign_with is not None:
        from secquant.signing import sign_envelope

        out = sign_envelope(out, sign_with)
    return out


def _describe(data: bytes) -> tuple[str, int, dict[str, list[Any]]]:
    """Type, version and ``{array: [dtype, shape]}`` of a plain artifact, for a sealed header."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        header = json.loads(npz[_HEADER].tobytes().decode())
        shapes = {n: [npz[n].dtype.str, list(npz[n].shape)] for n in npz.files if n != _HEADER}
    return str(header["type"]), int(header["version"]), shapes


def _check_sealed_header(header: dict[str, Any], data: bytes) -> None:
    """The decrypted artifact is what its authenticated header says (type, version, arrays)."""
    try:
        found = _describe(data)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"the decrypted artifact is not a secquant artifact: {exc!r}") from exc
    if list(found) != [header.get("type"), header.get("version"), header.get("arrays")]:
        raise IntegrityError("the decrypted artifact does not match its authenticated header")


def open_artifact(
    source: str | os.PathLike[str] | bytes,
    *,
    trusted: Any = None,
    decrypt_with: Any = None,
) -> bytes | str | os.PathLike[str]:
    """Check the signature and decrypt, returning what the npz reader should read.

    Args:
        source: File path or bytes.
        trusted: Public keys (paths, PEM or raw bytes, key objects) of accepted
            signers, or None to skip signature checks (unsigned files load).
        decrypt_with: Model key for an encrypted artifact, or None.

    Returns:
        The plain artifact's bytes, or ``source`` itself when it is a plain
        file and nothing had to be checked.

    Raises:
        IntegrityError: unsigned while ``trusted`` is given, unknown signer, bad
            signature, not encrypted while ``decrypt_with`` is given, or damaged.
        DecryptionError: wrong key, or the ciphertext was modified.
        ArtifactError: encrypted but no ``decrypt_with``.
    """
    from secquant.sealing import SEALED_MAGIC
    from secquant.signing import SIGNED_MAGIC

    if not isinstance(source, (bytes, bytearray)):
        with open(source, "rb") as fh:
            magic = fh.read(len(SIGNED_MAGIC))
        if trusted is None and decrypt_with is None and magic not in (SIGNED_MAGIC, SEALED_MAGIC):
            return source
        source = Path(source).read_bytes()
    data = bytes(source)
    if trusted is not None:
        from secquant.signing import open_envelope

        data = open_envelope(data, trusted)[1]
    elif data.startswith(SIGNED_MAGIC):
        from secquant.signing import strip_envelope

        data = strip_envelope(data)
    if decrypt_with is not None:
        from secquant.sealing import unseal

        header, data = unseal(data, decrypt_with)
        _check_sealed_header(header, data)
    elif data.startswith(SEALED_MAGIC):
        raise ArtifactError("the artifact is encrypted; pass decrypt_with= a model key "
                            "(ModelKey.from_file(path) or ModelKey.from_env())")
    return data


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


def read_artifact(path: str | os.PathLike[str] | bytes, kind: str, versions: tuple[int, ...] = (1,), *,
                  trusted: Any = None, decrypt_with: Any = None) -> tuple[int, dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and verify an artifact written by :func:`write_artifact`.

    Args:
        path: File path, or the file's bytes.
        kind: The type the caller expects.
        versions: Format versions the caller can read.
        trusted: Public keys of accepted signers, checked first (see :func:`open_artifact`).
        decrypt_with: Model key of an encrypted artifact.

    Returns:
        (version, meta, arrays), with big-integer arrays restored as object arrays.

    Raises:
        ArtifactError: not an artifact, wrong type, unsupported version, or encrypted without a key.
        IntegrityError: the digest does not match the content, or a signature or decryption check failed.
    """
    path = open_artifact(path, trusted=trusted, decrypt_with=decrypt_with)
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
