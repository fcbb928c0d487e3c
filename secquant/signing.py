"""Ed25519 signatures for artifacts and published bytes (``cryptography``, imported lazily).

* :func:`generate_signing_keys` writes a key pair: ``NAME.key`` (PKCS#8 PEM,
  mode 0600) and ``NAME.pub`` (SubjectPublicKeyInfo PEM).  Neither file is
  ever overwritten.
* A signer is named by its **key id**: the SHA-256 of the raw 32-byte public
  key, in hex.  :func:`trusted_keys` turns paths, PEM or raw bytes, or key
  objects into a ``{key id: public key}`` map.
* :func:`sign_bytes` / :func:`verify_bytes` sign anything (e.g. the service's
  published client spec) under a context string, so a signature made for one
  purpose never verifies for another.  :func:`sign_envelope` /
  :func:`open_envelope` are the artifact framing used by :mod:`secquant.artifact`.

Signed envelope (all before the body is parsed)::

    b"SQSIGNED" | version 0x01 | key id (32 bytes) | signature (64 bytes) | body

The signature covers ``b"secquant/artifact/v1\\x00"``, the first 41 bytes and the body.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError, IntegrityError, KeyMaterialError

__all__ = [
    "SIGNED_MAGIC",
    "Signature",
    "generate_signing_keys",
    "is_signed",
    "key_id",
    "load_private_key",
    "load_public_key",
    "open_envelope",
    "sign_bytes",
    "sign_envelope",
    "trusted_keys",
    "verify_bytes",
    "write_secret_file",
]

SIGNED_MAGIC = b"SQSIGNED"
_ENVELOPE_VERSION = 1
_HEAD = len(SIGNED_MAGIC) + 1 + 32  # magic, version, key id
_SIG = 64
_ARTIFACT_CONTEXT = "artifact/v1"

#: What ``trusted=`` accepts per entry: a path, PEM or raw 32-byte public key, or a key object.
PublicKeySource = Any  # str | os.PathLike | bytes | a key object


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("signing needs the 'cryptography' package: pip install 'secquant[protect]'") from exc
    return ed25519, serialization


def write_secret_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to a new file created with ``mode``; never replaces an existing file.

    The bytes go to a temporary file in the same folder first, which is then
    hard-linked to ``path`` (fails if ``path`` exists), so the file is never
    seen half-written nor with looser permissions.

    Raises:
        FileExistsError: ``path`` exists (delete it yourself to replace a key).
    """
    from secquant.artifact import write_bytes_atomic

    return write_bytes_atomic(path, data, mode=mode, exclusive=True)


def read_secret_file(path: str | os.PathLike[str], what: str) -> bytes:
    """Read a secret key file, refusing one that others can read.

    Raises:
        KeyMaterialError: the file is readable or writable by group or others.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise KeyMaterialError(f"{what} {p} has mode {mode:o}; others can read it. Run: chmod 600 {p}")
    return p.read_bytes()


def key_id(public_key: Any) -> str:
    """SHA-256 of the raw 32-byte Ed25519 public key, in hex (64 characters)."""
    _, serialization = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_signing_keys(out_dir: str | os.PathLike[str], name: str = "signing") -> tuple[Path, Path]:
    """Make an Ed25519 key pair: ``out_dir/NAME.key`` (mode 0600) and ``out_dir/NAME.pub``.

    Returns:
        (private key path, public key path).

    Raises:
        FileExistsError: either file exists already (nothing is written then).
        ConfigError: ``name`` is empty or holds a path separator.
    """
    ed25519, serialization = _crypto()
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise ConfigError(f"key name must be a plain file name, got {name!r}")
    out = Path(out_dir)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise FileExistsError(f"{p} exists; refusing to overwrite a key (move it away first)")
    private = ed25519.Ed25519PrivateKey.generate()  # the OS CSPRNG, like `secrets`
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_secret_file(private_path, pem, mode=0o600)
    try:
        write_secret_file(public_path, pub, mode=0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def load_private_key(source: Any) -> Any:
    """An Ed25519 private key from a PEM file path (mode 0600), PEM bytes, or a key object.

    Raises:
        KeyMaterialError: the file is readable by others.
        ConfigError: not an Ed25519 private key.
    """
    ed25519, serialization = _crypto()
    if isinstance(source, ed25519.Ed25519PrivateKey):
        return source
    data = source if isinstance(source, bytes) else read_secret_file(source, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"signing keys are Ed25519; got {type(key).__name__} (make one with `secquant keys new`)")
    return key


def load_public_key(source: PublicKeySource) -> Any:
    """An Ed25519 public key from a path, PEM or raw 32 bytes, or a public/private key object.

    Raises:
        ConfigError: not an Ed25519 public key.
        FileNotFoundError: no such file.
    """
    ed25519, serialization = _crypto()
    if isinstance(source, ed25519.Ed25519PublicKey):
        return source
    if isinstance(source, ed25519.Ed25519PrivateKey):
        return source.public_key()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a PEM public key (give the .pub file of `secquant keys new`): {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"trusted keys are Ed25519; got {type(key).__name__}")
    return key


def trusted_keys(trusted: PublicKeySource | Iterable[PublicKeySource] | Mapping[str, Any]) -> dict[str, Any]:
    """``{key id: public key}`` from one source, several, or such a map already.

    Raises:
        ConfigError: an entry is not an Ed25519 public key.
    """
    if isinstance(trusted, Mapping):
        return {str(k): load_public_key(v) for k, v in trusted.items()}
    items = [trusted] if isinstance(trusted, (str, bytes, os.PathLike)) or not isinstance(trusted, Iterable) else list(trusted)
    keys = [load_public_key(item) for item in items]
    return {key_id(k): k for k in keys}


def _message(context: str, data: bytes) -> bytes:
    if not context or "\x00" in context:
        raise ConfigError(f"signature context must be a non-empty string without NUL, got {context!r}")
    return b"secquant/" + context.encode() + b"\x00" + data


@dataclass(frozen=True)
class Signature:
    """A detached Ed25519 signature.

    Attributes:
        key_id: Signer's key id (hex SHA-256 of the raw public key).
        value: The 64 signature bytes.
        context: What was signed (domain separation), e.g. ``"client-spec/v1"``.
    """

    key_id: str
    value: bytes
    context: str = "bytes/v1"

    def to_json(self) -> dict[str, str]:
        """JSON-ready form (signature in base64)."""
        return {"alg": "ed25519", "key_id": self.key_id, "context": self.context,
                "signature": base64.b64encode(self.value).decode()}

    @classmethod
    def from_json(cls, data: Any) -> Signature:
        """Inverse of :meth:`to_json`.

        Raises:
            IntegrityError: not a well-formed Ed25519 signature record.
        """
        try:
            if data["alg"] != "ed25519":
                raise IntegrityError(f"unsupported signature algorithm {data['alg']!r}")
            value = base64.b64decode(data["signature"], validate=True)
            return cls(key_id=str(data["key_id"]), value=value, context=str(data["context"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed signature record: {exc!r}") from exc


def sign_bytes(data: bytes, private_key: Any, *, context: str = "bytes/v1") -> Signature:
    """Sign ``data`` under ``context`` with an Ed25519 private key (path, PEM bytes or key object).

    Raises:
        KeyMaterialError, ConfigError: as :func:`load_private_key`.
    """
    key = load_private_key(private_key)
    return Signature(key_id(key.public_key()), key.sign(_message(context, bytes(data))), context)


def verify_bytes(data: bytes, signature: Signature, trusted: Any, *, context: str = "bytes/v1") -> str:
    """Check ``signature`` over ``data``; returns the signer's key id.

    Raises:
        IntegrityError: wrong context, signer not in ``trusted``, or a bad signature.
    """
    from cryptography.exceptions import InvalidSignature

    if signature.context != context:
        raise IntegrityError(f"signature was made for {signature.context!r}, not {context!r}")
    keys = trusted_keys(trusted)
    key = keys.get(signature.key_id)
    if key is None:
        raise IntegrityError(f"signed by an unknown key {signature.key_id[:16]}...; trusted: "
                             f"{[k[:16] for k in keys] or 'none'}")
    try:
        key.verify(signature.value, _message(context, bytes(data)))
    except InvalidSignature:
        raise IntegrityError(f"bad signature by key {signature.key_id[:16]}...: the data was modified") from None
    return signature.key_id


def is_signed(data: bytes) -> bool:
    """Whether ``data`` starts with the signed-envelope magic."""
    return bytes(data[: len(SIGNED_MAGIC)]) == SIGNED_MAGIC


def sign_envelope(body: bytes, private_key: Any) -> bytes:
    """Wrap ``body`` (an artifact's bytes) in a signed envelope.

    Raises:
        KeyMaterialError, ConfigError: as :func:`load_private_key`.
    """
    key = load_private_key(private_key)
    head = SIGNED_MAGIC + bytes([_ENVELOPE_VERSION]) + bytes.fromhex(key_id(key.public_key()))
    return head + key.sign(_message(_ARTIFACT_CONTEXT, head + bytes(body))) + bytes(body)


def open_envelope(data: bytes, trusted: Any) -> tuple[str, bytes]:
    """Verify a signed envelope against ``trusted`` keys before anything else is read.

    Returns:
        (signer key id, body bytes).

    Raises:
        IntegrityError: unsigned, truncated, unknown signer, or bad signature.
    """
    from cryptography.exceptions import InvalidSignature

    keys = trusted_keys(trusted)
    if not is_signed(data):
        raise IntegrityError("the artifact is not signed, but trusted keys were given; sign it with "
                             "save(..., sign_with=KEY) or load it without trusted=")
    if len(data) < _HEAD + _SIG or data[len(SIGNED_MAGIC)] != _ENVELOPE_VERSION:
        raise IntegrityError("signed envelope is truncated or of an unknown version")
    signer = bytes(data[len(SIGNED_MAGIC) + 1 : _HEAD]).hex()
    key = keys.get(signer)
    if key is None:
        raise IntegrityError(f"signed by an unknown key {signer[:16]}...; trusted: {[k[:16] for k in keys] or 'none'}")
    head, sig, body = bytes(data[:_HEAD]), bytes(data[_HEAD : _HEAD + _SIG]), bytes(data[_HEAD + _SIG :])
    try:
        key.verify(sig, _message(_ARTIFACT_CONTEXT, head + body))
    except InvalidSignature:
        raise IntegrityError(f"bad signature by key {signer[:16]}...: the artifact was modified, truncated "
                             "or extended after signing") from None
    return signer, body


def strip_envelope(data: bytes) -> bytes:
    """The body of a signed envelope, unverified (for loading without ``trusted``).

    Raises:
        IntegrityError: the envelope is truncated.
    """
    if len(data) < _HEAD + _SIG:
        raise IntegrityError("signed envelope is truncated")
    return bytes(data[_HEAD + _SIG :])
