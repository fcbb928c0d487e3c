"""The wire: every request the client app's :class:`secquant.protocol.Client` sends goes through here.

The client app points its ``Client`` at ``/relay/{i}/`` on itself; the relay
forwards each request byte for byte to inference server ``i`` and records what
crossed: method, path, body size, SHA-256, the first bytes, and, for
secquant frames (``SQNT``, a big-endian u32 header length, a JSON header,
the payload; ``protocols/inference-service.md``), the header the server
reads in clear and the first bytes of the ciphertext payload.  So the page
shows what the server actually receives, and a test can compare it with
what the page claims (``GET /api/wire``).  Nothing is changed on the way: no
crypto happens here, the bearer token passes through untouched.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HEX_BYTES", "WireLog", "WireRecord", "check_upstream", "forward", "parse_frame", "stage_after",
           "stage_before", "stage_sent"]

#: How many leading bytes are shown as hex.
HEX_BYTES = 32
_CHUNK = 1 << 20
_PREFIX = struct.Struct(">4sI")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class WireRecord:
    """One request through the relay.

    Attributes:
        seq: Order of arrival (from 1).
        job: Id of the job that sent it, if any.
        server: Base URL of the inference server it went to.
        method: HTTP method.
        path: Path on the server (``/v1/...``).
        request_bytes: Body bytes sent to the server.
        request_sha256: SHA-256 of that body (hex).
        head_hex: Its first :data:`HEX_BYTES` bytes, hex.
        frame: For a secquant frame, ``{"type", "meta", "header_bytes", "payload_bytes", "payload_hex"}``.
        status: HTTP status of the answer (502: the server could not be reached).
        response_bytes: Body bytes of the answer.
        seconds: Time from forwarding to the full answer.
    """

    seq: int
    job: str | None
    server: str
    method: str
    path: str
    request_bytes: int
    request_sha256: str
    head_hex: str
    frame: dict[str, Any] | None
    status: int | None = None
    response_bytes: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def parse_frame(body: bytes) -> dict[str, Any] | None:
    """The clear header and payload start of a secquant frame, or None if ``body`` is not one."""
    if len(body) < _PREFIX.size:
        return None
    magic, hlen = _PREFIX.unpack_from(body)
    if magic != b"SQNT" or _PREFIX.size + hlen > len(body) or hlen > 65_536:
        return None
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + hlen])
    except ValueError:
        return None
    payload = body[_PREFIX.size + hlen:]
    return {"type": header.get("type"), "meta": header.get("meta"), "header_bytes": _PREFIX.size + hlen,
            "payload_bytes": len(payload), "payload_hex": payload[:HEX_BYTES].hex()}


class WireLog:
    """The last ``keep`` records, thread-safe.

    Args:
        keep: Records kept (>= 1).
    """

    def __init__(self, keep: int = 500) -> None:
        self._records: deque[WireRecord] = deque(maxlen=max(1, keep))
        self._lock = threading.Lock()
        self._seq = 0

    def add(self, job: str | None, server: str, method: str, path: str, body: bytes) -> WireRecord:
        """Record a request about to be forwarded."""
        with self._lock:
            self._seq += 1
            record = WireRecord(seq=self._seq, job=job, server=server, method=method, path=path,
                                request_bytes=len(body), request_sha256=hashlib.sha256(body).hexdigest(),
                                head_hex=body[:HEX_BYTES].hex(), frame=parse_frame(body))
            self._records.append(record)
            return record

    def records(self, job: str | None = None) -> list[WireRecord]:
        """Records in order; only those of ``job`` when given."""
        with self._lock:
            return [r for r in self._records if job is None or r.job == job]


def check_upstream(url: str) -> None:
    """Refuse plain HTTP to anything but this machine: ciphertexts and the token would travel unprotected.

    Raises:
        DemoServerError: ``url`` is ``http://`` to a non-loopback host.
    """
    from secquant.web.errors import DemoServerError

    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise DemoServerError(f"refusing plain http:// to {parts.hostname}: the bearer token and ciphertexts "
                              "would travel unprotected; serve with --certfile/--keyfile and use https://",
                              code="InsecureServer")


async def forward(http: Any, server: str, method: str, path: str, headers: dict[str, str], body: bytes,
                  record: WireRecord, progress: Callable[[int, int], None]) -> tuple[int, bytes, str]:
    """Send one recorded request to ``server`` and return (status, body, content type).

    The body streams in 1 MiB chunks (with its Content-Length, so the server sees the
    same request), and ``progress(sent, total)`` follows it.  A server that cannot be
    reached gives a 502 with a JSON ``{"error": "ServerUnreachable", "detail"}``.

    Args:
        http: An ``httpx.AsyncClient``.
        server: Base URL of the inference server.
        method: HTTP method.
        path: Path on the server.
        headers: Headers to pass (Authorization, Content-Type).
        body: The request body.
        record: Its wire record, completed here.
        progress: Called with bytes sent so far and the total.
    """
    import httpx

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), _CHUNK):
            progress(start, len(body))
            yield body[start:start + _CHUNK]
        progress(len(body), len(body))

    send_headers = dict(headers)
    content: Any = None
    if body:
        send_headers["Content-Length"] = str(len(body))
        content = chunks()
    t0 = time.perf_counter()
    try:
        answer = await http.request(method, server.rstrip("/") + path, headers=send_headers, content=content)
        status, data, kind = answer.status_code, answer.content, answer.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        status, kind = 502, "application/json"
        data = json.dumps({"error": "ServerUnreachable", "detail": f"cannot reach the inference server at "
                           f"{server}: {type(exc).__name__}: {exc or 'no answer'}"}).encode()
    record.status, record.response_bytes, record.seconds = status, len(data), time.perf_counter() - t0
    return status, data, kind


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def stage_before(record: WireRecord, rounds: int) -> str | None:
    """The job's stage while ``record`` uploads (``rounds``: evaluate requests of the job so far)."""
    if record.path == "/v1/info":
        return "reading the server's info"
    if record.path == "/v1/client-spec":
        return "fetching the client spec (shapes, quantization, encryption parameters; no weights)"
    if record.method == "POST" and record.path == "/v1/sessions":
        return f"uploading the public and evaluation keys ({_size(record.request_bytes)})"
    if record.method == "POST" and record.path.endswith("/evaluate"):
        return f"sending the ciphertext ({_size(record.request_bytes)}, round {rounds})"
    return None


def stage_sent(record: WireRecord, rounds: int) -> str | None:
    """The job's stage once ``record``'s body is sent and the server works on it."""
    if record.method == "POST" and record.path == "/v1/sessions":
        return "server loading the evaluation keys"
    if record.method == "POST" and record.path.endswith("/evaluate"):
        return f"server evaluating on ciphertexts (round {rounds})"
    return None


def stage_after(record: WireRecord) -> str | None:
    """The job's stage once the answer to ``record`` is back."""
    if record.path == "/v1/client-spec" and record.status == 200:
        return "generating keys from the client spec (the secret key stays in this process)"
    if record.method == "POST" and record.path.endswith("/evaluate") and record.status == 200:
        return "decrypting the answer (client)"
    return None
