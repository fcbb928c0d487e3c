"""Access control and limits of the encrypted-inference service."""

from __future__ import annotations

from dataclasses import dataclass

from secquant.errors import ConfigError

__all__ = ["ServiceConfig"]


@dataclass(frozen=True)
class ServiceConfig:
    """Access control and limits of the inference service.

    Attributes:
        token: Bearer token clients must present; None only with ``allow_no_auth``.
        allow_no_auth: Explicit opt-out of authentication (logged loudly).
        max_request_bytes: Largest request body in bytes (>= 1024); larger ones get 413.
        session_ttl: Seconds a session lives after creation (> 0).
        max_sessions: Most live sessions (>= 1); more get 429.
        max_live_roles: Most server roles kept in memory (>= 1); others are rebuilt from the cache.
        max_batch: Most inputs per evaluate request (>= 1).
        max_concurrent_evaluations: Evaluations running at once (>= 1); the rest wait.
        cache_dir: Where public material is cached (0700 directory, 0600 files);
            a fresh temporary directory when None.
        publish_model: Also serve the whole model artifact (weights included) at
            ``GET /v1/model``.  Off by default: clients build their role from
            ``GET /v1/client-spec`` and never need the weights.

    Raises:
        ConfigError: no token without ``allow_no_auth``, a short token, or a limit out of range.
    """

    token: str | None = None
    allow_no_auth: bool = False
    max_request_bytes: int = 256 * 2**20
    session_ttl: float = 3600.0
    max_sessions: int = 16
    max_live_roles: int = 8
    max_batch: int = 1024
    max_concurrent_evaluations: int = 2
    cache_dir: str | None = None
    publish_model: bool = False

    def __post_init__(self) -> None:
        if self.token is None and not self.allow_no_auth:
            raise ConfigError("the service needs a bearer token; pass token=... (or allow_no_auth=True to opt out)")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 16):
            raise ConfigError("the bearer token must be a string of at least 16 characters "
                              "(use secrets.token_urlsafe())")
        for name, low in (("max_request_bytes", 1024), ("max_sessions", 1), ("max_live_roles", 1),
                          ("max_batch", 1), ("max_concurrent_evaluations", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        if not self.session_ttl > 0:
            raise ConfigError(f"session_ttl must be > 0 seconds, got {self.session_ttl!r}")
