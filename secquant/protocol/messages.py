"""Wire messages: one typed, versioned, digest-checked binary frame per body.

Every binary body that crosses the network is a *frame*::

    offset  size  field
    0       4     magic  b"SQNT"
    4       4     header length H, unsigned big-endian (at most 65,536)
    8       H     header: UTF-8 JSON object
    8+H     L     payload: opaque bytes (ciphertexts, public keys)

The header JSON has exactly these keys::

    {"type": "secquant.protocol.EvaluateRequest",  # message type
     "version": 1,                                  # format version of that type
     "payload_len": L,                              # bytes after the header
     "payload_sha256": "<64 hex digits>",           # SHA-256 of the payload
     "meta": {...}}                                 # per-type fields, below

:func:`decode_frame` refuses a wrong magic, a header that is not such an
object (including JSON nested too deeply for the decoder, which would
otherwise raise ``RecursionError``), a wrong type or an unknown version, a
payload of another length (truncated or padded) and a digest mismatch, always
with :class:`~secquant.protocol.errors.MessageError` (HTTP 400).  Nothing is unpickled and nothing
is decompressed, so a frame never expands beyond its size on the wire.

Message types (``meta`` fields; payload):

* ``SessionCreate`` v1 — client → server, ``POST /v1/sessions``.
  ``scheme`` (str), ``model_digest`` (hex), ``fingerprint`` (hex);
  payload: the backend's public material (``ClientRole.public_material()``).
* ``EvaluateRequest`` v1 — client → server, ``POST /v1/sessions/{id}/evaluate``.
  ``fingerprint`` (hex), ``batch`` (int, inputs in the batch);
  payload: ``ClientRole.encrypt(xq)``.
* ``EvaluateResponse`` v1 — server → client.
  ``fingerprint``, ``batch``, ``seconds`` (float, evaluation time);
  payload: ``ServerRole.evaluate(...)``, for ``ClientRole.decrypt``.
* ``CachedSession`` v1 — on the server's disk only (0600 files).
  ``session_hash`` (SHA-256 of the session id, hex), ``created``/``expires``
  (float, Unix seconds), ``fingerprint``; payload: the public material.
* Aggregation messages are listed in :mod:`secquant.protocol.aggregation.messages`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from secquant.protocol.errors import MessageError

__all__ = [
    "CACHED_SESSION",
    "EVALUATE_REQUEST",
    "EVALUATE_RESPONSE",
    "MAGIC",
    "PROTOCOL_VERSION",
    "SESSION_CREATE",
    "Frame",
    "canonical_json",
    "decode_frame",
    "encode_frame",
    "parse_json",
    "sha256_hex",
]

MAGIC = b"SQNT"
PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 65_536
_PREFIX = struct.Struct(">4sI")

SESSION_CREATE = "secquant.protocol.SessionCreate"
EVALUATE_REQUEST = "secquant.protocol.EvaluateRequest"
EVALUATE_RESPONSE = "secquant.protocol.EvaluateResponse"
CACHED_SESSION = "secquant.protocol.CachedSession"


def canonical_json(obj: Any) -> bytes:
    """Sorted, compact, NaN-free JSON (the form that is hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Frame:
    """One decoded message.

    Attributes:
        type: Message type, e.g. ``"secquant.protocol.EvaluateRequest"``.
        version: Format version of that type (>= 1).
        meta: Per-type fields (JSON object).
        payload: Opaque bytes.
    """

    type: str
    version: int
    meta: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise MessageError("a frame needs a non-empty type string")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise MessageError(f"frame version must be an int >= 1, got {self.version!r}")
        if not isinstance(self.meta, dict):
            raise MessageError("frame meta must be a JSON object")
        if not isinstance(self.payload, (bytes, bytearray, memoryview)):
            raise MessageError(f"frame payload must be bytes, got {type(self.payload).__name__}")


def encode_frame(frame: Frame) -> bytes:
    """Serialize ``frame`` to its wire form.

    Raises:
        MessageError: meta is not JSON-serializable or the header is too long.
    """
    payload = bytes(frame.payload)
    try:
        header = canonical_json({
            "type": frame.type, "version": frame.version, "meta": frame.meta,
            "payload_len": len(payload), "payload_sha256": sha256_hex(payload),
        })
    except (TypeError, ValueError) as exc:
        raise MessageError(f"frame meta is not JSON-serializable: {exc}") from exc
    if len(header) > MAX_HEADER_BYTES:
        raise MessageError(f"frame header is {len(header)} bytes; the limit is {MAX_HEADER_BYTES}")
    return _PREFIX.pack(MAGIC, len(header)) + header + payload


def decode_frame(data: bytes, expected_type: str, versions: tuple[int, ...] = (1,)) -> Frame:
    """Parse and verify a frame of type ``expected_type``.

    Args:
        data: The whole body.
        expected_type: The message type the endpoint accepts.
        versions: Format versions the caller reads.

    Raises:
        MessageError: wrong magic, malformed header, wrong type or version,
            truncated or padded payload, or digest mismatch.
    """
    if len(data) < _PREFIX.size:
        raise MessageError(f"body of {len(data)} bytes is too short for a frame (need at least {_PREFIX.size})")
    magic, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise MessageError(f"not a secquant frame: magic {magic!r}, expected {MAGIC!r}")
    if hlen > MAX_HEADER_BYTES or _PREFIX.size + hlen > len(data):
        raise MessageError(f"frame header length {hlen} does not fit the {len(data)}-byte body (truncated?)")
    header = parse_json(bytes(data[_PREFIX.size:_PREFIX.size + hlen]), "frame header")
    if not isinstance(header, dict) or set(header) != {"type", "version", "meta", "payload_len", "payload_sha256"}:
        raise MessageError("frame header must be an object with type, version, meta, payload_len, payload_sha256")
    if not isinstance(header["type"], str) or header["type"] != expected_type:
        raise MessageError(f"expected a {expected_type} message, got {str(header['type'])[:80]!r}")
    version = header["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in versions:
        raise MessageError(
            f"{expected_type} version {str(version)[:20]!r} is not supported (supported: {list(versions)})")
    if not isinstance(header["meta"], dict):
        raise MessageError(f"{expected_type} meta must be a JSON object")
    payload = data[_PREFIX.size + hlen:]
    if isinstance(header["payload_len"], bool) or header["payload_len"] != len(payload):
        raise MessageError(
            f"{expected_type} payload is {len(payload)} bytes but the header says {str(header['payload_len'])[:20]} "
            "(truncated or padded)")
    digest = header["payload_sha256"]
    if not isinstance(digest, str) or not hmac.compare_digest(digest, sha256_hex(payload)):
        raise MessageError(f"{expected_type} payload digest does not match its header (corrupted in transit?)")
    return Frame(type=header["type"], version=int(header["version"]), meta=header["meta"], payload=payload)


def parse_json(data: bytes, what: str) -> Any:
    """Parse client-supplied JSON, mapping every decoder failure to :class:`MessageError`.

    Besides malformed text this covers nesting deeper than the interpreter's
    recursion limit (``RecursionError``: e.g. 30,000 ``[``), integers longer
    than Python's 4,300-digit conversion limit and invalid UTF-8.

    Raises:
        MessageError: ``data`` is not UTF-8 JSON the decoder can read.
    """
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise MessageError(f"{what} is nested too deeply to parse") from None
    except (ValueError, MemoryError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise MessageError(f"{what} is not UTF-8 JSON: {str(exc)[:200]}") from None


def require(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """Return ``meta[key]`` if it has type ``kind``.

    Raises:
        MessageError: the field is missing or of another type.
    """
    value = meta.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise MessageError(f"{what} needs meta field {key!r} of type {getattr(kind, '__name__', kind)}, got {value!r}")
    return value
