"""Client side of HTTP, shared by the inference client and the aggregation parties (httpx).

* :func:`http_client`: an ``httpx.Client`` on a base URL with the bearer token
  and TLS verification (a CA bundle path becomes an SSL context);
* :func:`raise_for_status`: a 4xx/5xx answer becomes :class:`RemoteError`
  carrying the status, the server's error name and its message.

httpx is imported only when a client is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secquant.protocol.errors import RemoteError

__all__ = ["OCTET_STREAM", "http_client", "raise_for_status"]

#: Headers of a binary frame body.
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def http_client(url: str, token: str | None, *, verify: Any = True, timeout: float = 300.0) -> Any:
    """An ``httpx.Client`` for ``url`` that sends ``Authorization: Bearer <token>`` (when given).

    Args:
        url: Base URL; a trailing ``/`` is dropped.
        token: Bearer token, or None for a server without authentication.
        verify: TLS verification: True, False, an SSL context, or a CA bundle path.
        timeout: Seconds per request (> 0).
    """
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(verify, (str, Path)):
        import ssl

        verify = ssl.create_default_context(cafile=str(verify))
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, verify=verify, timeout=timeout)


def raise_for_status(response: Any) -> None:
    """Raise :class:`RemoteError` for a 4xx/5xx answer, with the server's message."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        error, detail = str(body.get("error", "HTTPError")), str(body.get("detail", body))
    except ValueError:
        error, detail = "HTTPError", response.text[:500]
    raise RemoteError(response.status_code, error, detail)
