"""Errors of the browser demo, each a :class:`~secquant.errors.SecquantError` and the fitting built-in.

Every one carries a short ``code`` that the page shows next to the message
(``EmptyCanvas``, ``WrongImageSize``, ``ServerUnreachable``, ``SpecMismatch``, ...).
"""

from __future__ import annotations

from secquant.errors import SecquantError

__all__ = ["DemoInputError", "DemoServerError", "WebError"]


class WebError(SecquantError):
    """Base of the demo's errors.

    Attributes:
        code: Short machine-readable name shown on the page.
        status: HTTP status the client app answers with.
    """

    code = "DemoError"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class DemoInputError(WebError, ValueError):
    """The input cannot be used: an empty canvas, a wrong image size, an unknown model or scheme."""

    code = "BadInput"
    status = 422


class DemoServerError(WebError, ConnectionError):
    """The inference server cannot be used: unreachable, exited, or serving another model or spec."""

    code = "ServerUnavailable"
    status = 503
