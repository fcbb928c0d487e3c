"""Errors of the network protocols, each a :class:`SecquantError` and the fitting built-in.

The server maps each class to one HTTP status (:data:`HTTP_STATUS`); the
client raises :class:`RemoteError` carrying the status, the error name and
the server's message.
"""

from __future__ import annotations

from secquant.errors import ConfigError, IntegrityError, KeyMaterialError, ParameterError, SecquantError

__all__ = [
    "HTTP_STATUS",
    "AuthenticationError",
    "CacheDirError",
    "CiphertextError",
    "InsecureParametersError",
    "MessageError",
    "ParameterMismatchError",
    "PayloadTooLargeError",
    "PrivacyBudgetError",
    "QueryBudgetError",
    "RateLimitError",
    "ReleaseRefusedError",
    "ReleaseUnsupportedError",
    "RemoteError",
    "RoundStateError",
    "ScopeError",
    "ServerBusyError",
    "SessionLimitError",
    "SessionNotFoundError",
    "SpecAuthenticationError",
    "TransportSecurityError",
    "retry_after",
    "status_for",
]


class MessageError(SecquantError, ValueError):
    """A wire message is malformed, truncated, of the wrong type or version."""


class CiphertextError(SecquantError, ValueError):
    """The backend could not read or evaluate a ciphertext batch or public material."""


class PayloadTooLargeError(SecquantError, ValueError):
    """A request body exceeds the server's size limit."""


class SessionNotFoundError(SecquantError, LookupError):
    """No live session (or round) has this id: never created, expired or deleted."""


class SessionLimitError(SecquantError, RuntimeError):
    """The server already holds its maximum number of live sessions."""


class AuthenticationError(SecquantError, PermissionError):
    """The bearer token is missing or wrong."""


class ScopeError(SecquantError, PermissionError):
    """The token is valid but lacks the scope the endpoint needs (``infer`` or ``admin``)."""


class PrivacyBudgetError(SecquantError, PermissionError):
    """The token's privacy budget under the server's noisy release policy is spent."""


class RateLimitError(SecquantError, RuntimeError):
    """The token sent requests faster than its rate limit.

    Attributes:
        retry_after: Seconds until a request would be admitted again (sent as ``Retry-After``).
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class QueryBudgetError(RateLimitError):
    """The token's query budget for the current window is spent (``retry_after``: until the window ends)."""


class ServerBusyError(RateLimitError):
    """Every request slot stayed busy for the whole admission timeout (503, ``Retry-After``)."""


class CacheDirError(SecquantError, PermissionError):
    """The session cache directory is not private (group/other access or another owner); it is never changed."""


class InsecureParametersError(ParameterError):
    """A server's client spec asks for less security than the client's own floor; no key was made."""


class SpecAuthenticationError(IntegrityError):
    """The service spec is not signed by a trusted key, or does not match the pinned digest."""


class TransportSecurityError(ConfigError):
    """Plain HTTP to a host that is not loopback, or TLS verification turned off, without the explicit opt-out."""


class ReleaseUnsupportedError(ConfigError):
    """A release policy this scheme cannot apply to an encrypted result (e.g. rounding a ciphertext)."""


class ParameterMismatchError(ConfigError):
    """A message was made for another model, scheme or parameter set."""


class RoundStateError(SecquantError, RuntimeError):
    """An aggregation round is not in the state the request needs."""


class ReleaseRefusedError(SecquantError, PermissionError):
    """The key-holder refuses to decrypt: the sum does not carry the noise the accounting needs."""


class RemoteError(SecquantError, ConnectionError):
    """The server answered with an error.

    Attributes:
        status: HTTP status code (4xx for the caller's mistakes).
        error: Name of the server-side error class.
        detail: The server's message.
    """

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"server answered {status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


#: Most specific class first; :func:`status_for` takes the first match.
HTTP_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (ScopeError, 403),
    (PrivacyBudgetError, 403),
    (KeyMaterialError, 403),
    (ReleaseRefusedError, 403),
    (SessionNotFoundError, 404),
    (ParameterMismatchError, 409),
    (RoundStateError, 409),
    (PayloadTooLargeError, 413),
    (SessionLimitError, 429),
    (ServerBusyError, 503),
    (RateLimitError, 429),
    (MessageError, 400),
    (SecquantError, 422),
)


def retry_after(exc: BaseException) -> int | None:
    """Whole seconds for a ``Retry-After`` header (at least 1), or None for errors that carry none."""
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        return None
    import math

    return max(1, math.ceil(float(seconds)))


def status_for(exc: BaseException) -> int:
    """The HTTP status a server answers for ``exc`` (422 for other secquant errors, 500 otherwise)."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500
