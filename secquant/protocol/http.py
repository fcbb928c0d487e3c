"""HTTP pieces shared by the inference and aggregation servers (FastAPI).

* bearer-token checking with :func:`hmac.compare_digest`;
* body reading that stops at a byte limit (413), whether or not the client
  sent ``Content-Length``;
* one JSON error body for every secquant error: ``{"error": name, "detail": message}``,
  with ``Retry-After`` on 429/503 answers and ``WWW-Authenticate`` on 401;
  a ``RecursionError`` from any decoder (deeply nested JSON) is a 400, never a 500.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from pydantic import BaseModel

from secquant.errors import SecquantError
from secquant.protocol.errors import AuthenticationError, PayloadTooLargeError, retry_after, status_for

__all__ = ["BINARY_BODY", "ErrorBody", "binary_response_doc", "check_token", "install_error_handlers", "read_body"]

log = logging.getLogger("secquant.protocol")


class ErrorBody(BaseModel):
    """Body of every 4xx answer."""

    error: str
    detail: str


#: OpenAPI fragment of a required ``application/octet-stream`` request body.
BINARY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def binary_response_doc(description: str, errors: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for an endpoint answering a binary frame."""
    doc: dict[int | str, dict[str, Any]] = {
        200: {"description": description,
              "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    }
    for code in errors:
        doc[code] = {"model": ErrorBody, "description": "see the detail message"}
    return doc


def check_token(authorization: str | None, expected: str | None) -> None:
    """Check an ``Authorization: Bearer <token>`` header in constant time.

    Args:
        authorization: The header value, or None when absent.
        expected: The server's token; None disables authentication.

    Raises:
        AuthenticationError: header missing, not a bearer token, or wrong token.
    """
    if expected is None:
        return
    if not authorization:
        raise AuthenticationError("missing 'Authorization: Bearer <token>' header")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise AuthenticationError("wrong bearer token")


async def read_body(request: Any, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes.

    Raises:
        PayloadTooLargeError: the declared or actual size exceeds ``limit``.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {int(declared)} bytes exceeds the server limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the server limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def install_error_handlers(app: Any) -> None:
    """Answer every :class:`SecquantError` with its status and an :class:`ErrorBody`."""
    from fastapi.responses import JSONResponse

    async def handle(request: Any, exc: Exception) -> Any:
        status = status_for(exc)
        if status >= 500 and not isinstance(exc, SecquantError):
            log.exception("internal error on %s", request.url.path, exc_info=exc)
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        wait = retry_after(exc)
        if wait is not None:
            headers["Retry-After"] = str(wait)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status,
                            headers=headers or None)

    async def too_deep(request: Any, exc: Exception) -> Any:  # a decoder recursed on client bytes
        return JSONResponse({"error": "MessageError", "detail": "request data is nested too deeply to parse"},
                            status_code=400)

    async def invalid(request: Any, exc: Exception) -> Any:
        errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:5]]
        return JSONResponse({"error": "RequestValidationError", "detail": "invalid request: " + "; ".join(parts)},
                            status_code=422)

    async def http_error(request: Any, exc: Any) -> Any:  # framework errors: bad JSON, 404 route, 405
        return JSONResponse({"error": "HTTPError", "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    app.add_exception_handler(SecquantError, handle)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
