"""Errors of the network protocols, each a :class:`SecquantError` and the fitting built-in.

The server maps each class to one HTTP status (:data:`HTTP_STATUS`); the
client raises :class:`RemoteError` carrying the status, the error name and
the server's message.
"""

from __future__ import annotations

from secquant.errors import ConfigError, KeyMaterialError, SecquantError

__all__ = [
    "HTTP_STATUS",
    "AuthenticationError",
    "CiphertextError",
    "MessageError",
    "ParameterMismatchError",
    "PayloadTooLargeError",
    "ReleaseRefusedError",
    "RemoteError",
    "RoundStateError",
    "SessionLimitError",
    "SessionNotFoundError",
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
    (KeyMaterialError, 403),
    (ReleaseRefusedError, 403),
    (SessionNotFoundError, 404),
    (ParameterMismatchError, 409),
    (RoundStateError, 409),
    (PayloadTooLargeError, 413),
    (SessionLimitError, 429),
    (MessageError, 400),
    (SecquantError, 422),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status a server answers for ``exc`` (422 for other secquant errors, 500 otherwise)."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500
