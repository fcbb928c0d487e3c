"""Artifacts encrypted at rest: AES-256-GCM under a 32-byte model key (``cryptography``, imported lazily).

A :class:`ModelKey` is 32 random bytes from :mod:`secrets`, kept in a file of
exactly those bytes (mode 0600) or in an environment variable as 64 hex
characters (default name :data:`MODEL_KEY_ENV`).  Its **key id** is
``SHA-256("secquant/model-key-id/v1" || 0x00 || key)`` in hex: it names the
key without revealing it.

Sealed body::

    b"SQSEALED" | header length (4 bytes, big-endian) | header (canonical JSON) | ciphertext || 16-byte tag

The header holds the artifact's type and version, its arrays' dtypes and
shapes, the 96-bit nonce (fresh from :func:`secrets.token_bytes` on every
seal) and the key id; the first three fields are authenticated as GCM
associated data, so changing any bit anywhere fails decryption.  The
plaintext is the whole unencrypted artifact (metadata and weights).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import struct
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError, IntegrityError

__all__ = ["MODEL_KEY_ENV", "SEALED_MAGIC", "DecryptionError", "ModelKey", "as_model_key", "is_sealed", "seal", "unseal"]

SEALED_MAGIC = b"SQSEALED"
#: Environment variable :meth:`ModelKey.from_env` reads by default.
MODEL_KEY_ENV = "SECQUANT_MODEL_KEY"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_MAX_HEADER = 1 << 20
_MAX_PLAINTEXT = 2**31 - 1  # one GCM call in `cryptography`


class DecryptionError(IntegrityError):
    """An encrypted artifact cannot be opened: wrong key, or it was modified or truncated."""


class ModelKey:
    """A 32-byte AES-256-GCM key for models at rest; its ``repr`` never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        """Wrap raw key bytes.

        Raises:
            ConfigError: not exactly 32 bytes.
        """
        if not isinstance(key, (bytes, bytearray)) or len(key) != _KEY_BYTES:
            n = len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__
            raise ConfigError(f"a model key is exactly {_KEY_BYTES} raw bytes, got {n}")
        self._key = bytes(key)

    @classmethod
    def generate(cls) -> ModelKey:
        """A fresh key from :func:`secrets.token_bytes`."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ModelKey:
        """Read a key file of 32 raw bytes (mode 0600).

        Raises:
            KeyMaterialError: others can read the file.
            ConfigError: the file does not hold exactly 32 bytes.
        """
        from secquant.signing import read_secret_file

        data = read_secret_file(path, "model key")
        if len(data) != _KEY_BYTES:
            raise ConfigError(f"{path} holds {len(data)} bytes; a model key file holds exactly {_KEY_BYTES} raw "
                              "bytes (make one with `secquant keys model-key --out FILE`)")
        return cls(data)

    @classmethod
    def from_env(cls, name: str = MODEL_KEY_ENV) -> ModelKey:
        """Read a key from environment variable ``name``, as 64 hex characters.

        Raises:
            ConfigError: the variable is unset or not 64 hex characters.
        """
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"environment variable {name} is not set; put the model key there as 64 hex "
                              f"characters (e.g. {name}=$(xxd -p -c 64 model.key))")
        text = value.strip()
        if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
            raise ConfigError(f"environment variable {name} must hold the key as 64 hex characters "
                              f"(it holds {len(text)} characters)")
        return cls(bytes.fromhex(text))

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the 32 raw bytes to a new file with mode 0600.

        Raises:
            FileExistsError: the file exists.
        """
        from secquant.signing import write_secret_file

        return write_secret_file(path, self._key, mode=0o600)

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of a domain tag and the key: names the key without revealing it."""
        return hashlib.sha256(b"secquant/model-key-id/v1\x00" + self._key).hexdigest()

    def hex(self) -> str:
        """The key as 64 hex characters (for an environment variable); handle as a secret."""
        return self._key.hex()

    def aead(self) -> Any:
        """The ``cryptography`` AESGCM object for this key."""
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("encryption needs the 'cryptography' package: pip install 'secquant[protect]'") from exc
        return AESGCM(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelKey) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"ModelKey(key_id={self.key_id[:16]}...)"


def as_model_key(source: Any) -> ModelKey:
    """A :class:`ModelKey` from a key, a key file path, or 32 raw bytes.

    Raises:
        ConfigError, KeyMaterialError: as :meth:`ModelKey.from_file`.
    """
    if isinstance(source, ModelKey):
        return source
    if isinstance(source, (bytes, bytearray)):
        return ModelKey(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        return ModelKey.from_file(source)
    raise ConfigError(f"give a model key as ModelKey, a key file path or 32 bytes, not {type(source).__name__}")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` starts with the sealed-body magic."""
    return bytes(data[: len(SEALED_MAGIC)]) == SEALED_MAGIC


def seal(plaintext: bytes, key: Any, *, kind: str, version: int, arrays: dict[str, list[Any]]) -> bytes:
    """Encrypt an artifact's bytes under ``key`` with a fresh nonce.

    Args:
        plaintext: The unencrypted artifact.
        key: :class:`ModelKey`, key file path or 32 bytes.
        kind, version: The artifact's type and version (clear, authenticated).
        arrays: ``{name: [dtype, shape]}`` of its arrays (clear, authenticated).

    Raises:
        ConfigError: bad key, or a plaintext above 2 GiB.
    """
    k = as_model_key(key)
    if len(plaintext) > _MAX_PLAINTEXT:
        raise ConfigError(f"artifact of {len(plaintext)} bytes is above the 2 GiB a single AES-GCM seal holds")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    header = _canonical({"aead": "AES-256-GCM", "format": 1, "type": kind, "version": version,
                         "arrays": arrays, "nonce": nonce.hex(), "key_id": k.key_id})
    aad = SEALED_MAGIC + struct.pack(">I", len(header)) + header
    return aad + k.aead().encrypt(nonce, bytes(plaintext), aad)


def unseal(data: bytes, key: Any) -> tuple[dict[str, Any], bytes]:
    """Decrypt a sealed body.

    Returns:
        (header, plaintext artifact bytes).

    Raises:
        DecryptionError: wrong key, or any byte changed, removed or added.
        IntegrityError: not a sealed body, or its frame is damaged.
    """
    from cryptography.exceptions import InvalidTag

    k = as_model_key(key)
    if not is_sealed(data):
        raise IntegrityError("expected an encrypted artifact (decrypt_with= was given) but the file is not one")
    start = len(SEALED_MAGIC) + 4
    if len(data) < start:
        raise IntegrityError("encrypted artifact is truncated")
    (n,) = struct.unpack(">I", bytes(data[len(SEALED_MAGIC) : start]))
    if n > _MAX_HEADER or len(data) < start + n + 16:
        raise IntegrityError("encrypted artifact is truncated or its header length was modified")
    raw = bytes(data[start : start + n])
    try:
        header = json.loads(raw.decode())
        nonce = bytes.fromhex(header["nonce"])
        recorded = str(header["key_id"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"encrypted artifact header is damaged: {exc!r}") from exc
    if not hmac.compare_digest(recorded, k.key_id):
        raise DecryptionError(f"wrong key: the artifact was encrypted with key id {recorded[:16]}..., "
                              f"the key given has id {k.key_id[:16]}...")
    if len(nonce) != _NONCE_BYTES:
        raise IntegrityError("encrypted artifact header is damaged (nonce)")
    try:
        plaintext = k.aead().decrypt(nonce, bytes(data[start + n :]), bytes(data[: start + n]))
    except InvalidTag:
        raise DecryptionError("decryption failed: the encrypted artifact was modified or truncated") from None
    return header, plaintext
