"""Client side of HTTP, shared by the inference client and the aggregation parties (httpx).

* :func:`http_client`: an ``httpx.Client`` on a base URL with the bearer token
  and TLS verification (a CA bundle path becomes an SSL context);
* :func:`raise_for_status`: a 4xx/5xx answer becomes :class:`RemoteError`
  carrying the status, the server's error name and its message;
* :func:`check_transport`: HTTPS with certificate verification, except plain
  HTTP to a loopback host (127.0.0.0/8, ::1, ``localhost``); anything else
  needs the explicit, loud ``allow_insecure_transport=True``.

httpx is imported only when a client is made.
"""

from __future__ import annotations

import ipaddress
import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from secquant.protocol.errors import RemoteError, TransportSecurityError

__all__ = ["OCTET_STREAM", "InsecureTransportWarning", "check_transport", "http_client", "is_loopback",
           "raise_for_status"]

log = logging.getLogger("secquant.protocol")


class InsecureTransportWarning(UserWarning):
    """A client talks plain HTTP to a remote host or skips TLS verification because it opted out."""


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is loopback: ``localhost``, 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, verify: Any = True, *, allow_insecure_transport: bool = False) -> None:
    """Refuse plain HTTP to a host that is not loopback, and TLS without certificate verification.

    Args:
        url: Base URL.
        verify: TLS verification as given to :func:`http_client`; ``False`` turns it off.
        allow_insecure_transport: Explicit opt-out for test rigs: accept both, with an
            :class:`InsecureTransportWarning` and a log line.

    Raises:
        TransportSecurityError: an insecure transport without the opt-out.
    """
    scheme = urlsplit(url).scheme.lower()
    problems = []
    if scheme != "https" and not (scheme == "http" and is_loopback(url)):
        problems.append(f"{url!r} is plain http to a host that is not loopback: ciphertexts, the bearer token and "
                        "the client spec travel unprotected and can be swapped")
    if verify is False:
        problems.append("verify=False turns off TLS certificate checks, so any host can pose as the server")
    if not problems:
        return
    if not allow_insecure_transport:
        raise TransportSecurityError("; ".join(problems) + ". Use https:// with a verified certificate (a CA "
                                     "bundle path in verify=...); allow_insecure_transport=True only for test rigs")
    message = "INSECURE transport (allow_insecure_transport=True): " + "; ".join(problems)
    warnings.warn(message, InsecureTransportWarning, stacklevel=3)
    log.warning(message)

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
