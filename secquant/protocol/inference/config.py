"""Access control and limits of the encrypted-inference service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secquant.errors import ConfigError
from secquant.protocol.inference.tokens import TokenRecord, TokenTable

__all__ = ["ServiceConfig"]


@dataclass(frozen=True)
class ServiceConfig:
    """Access control and limits of the inference service.

    Attributes:
        token: One bearer token with every scope and no limits (identity
            ``default``).  It is hashed at construction and the plaintext is
            dropped: afterwards ``token`` is None and the hash lives in ``tokens``.
        tokens: Tokens with identities, scopes and limits (``secquant serve --tokens FILE``).
        allow_no_auth: Explicit opt-out of authentication (logged loudly).
        max_request_bytes: Largest evaluate body in bytes (>= 1024); None: derived
            from the model's batch geometry for ``max_batch`` inputs
            (:func:`~secquant.protocol.inference.limits.body_limits`).  Larger get 413.
        max_material_bytes: Largest session-creation body; None: derived from the
            model's key sizes (or ``max_request_bytes`` when that is given).
        session_ttl: Seconds a session lives after creation (> 0).
        max_sessions: Most live sessions (>= 1); more get 429.
        max_sessions_per_token: Most live sessions of one token (>= 1; a token's
            record may set its own).
        max_live_roles: Most server roles kept in memory (>= 1); others are rebuilt from the cache.
        max_batch: Most inputs per evaluate request (>= 1), counted in the payload.
        max_concurrent_evaluations: Evaluations running at once in this process (>= 1); the rest
            wait.  Requests handed to ``executor`` take no such slot.
        max_concurrent_requests: Request bodies being read or evaluated at once
            (>= ``max_concurrent_evaluations``); the slot is taken *before* a body
            is read, so memory stays below this times the body limit.
        admission_timeout: Seconds a request waits for a slot before a 503 (> 0).
        cache_dir: Where public material and usage are kept: created 0700, or an
            existing private directory (others are refused, never chmod-ed);
            a fresh temporary directory when None.
        publish_model: Also serve the whole model artifact (weights included) at
            ``GET /v1/model``.  Off by default.
        sign_key: Ed25519 private key (path, PEM bytes or key object) that signs
            the service spec (``secquant serve --sign-key``); None: unsigned.
        executor: Where THROUGHPUT-mode BFV and CKKS requests are evaluated (``secquant
            serve --executor``): a URL of
            :func:`~secquant.backends.executors.url.executor_from_url` (``fork:N``,
            ``local``, ``ray://host:10001``), checked and connected when the app is
            built (:mod:`~secquant.protocol.inference.offload`); None: in this process.
            Other requests always run in this process.

    Raises:
        ConfigError: no token without ``allow_no_auth``, a short token, or a limit out of range.
    """

    token: str | None = field(default=None, repr=False)
    tokens: TokenTable | None = field(default=None, repr=False)
    allow_no_auth: bool = False
    max_request_bytes: int | None = None
    max_material_bytes: int | None = None
    session_ttl: float = 3600.0
    max_sessions: int = 16
    max_sessions_per_token: int = 8
    max_live_roles: int = 8
    max_batch: int = 1024
    max_concurrent_evaluations: int = 2
    max_concurrent_requests: int = 4
    admission_timeout: float = 30.0
    cache_dir: str | None = None
    publish_model: bool = False
    sign_key: Any = field(default=None, repr=False)
    executor: str | None = None

    def __post_init__(self) -> None:
        if self.token is None and self.tokens is None and not self.allow_no_auth:
            raise ConfigError("the service needs a bearer token; pass token=... or tokens=TokenTable (or "
                              "allow_no_auth=True to opt out)")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 16):
            raise ConfigError("the bearer token must be a string of at least 16 characters "
                              "(use secrets.token_urlsafe())")
        if self.tokens is not None and not isinstance(self.tokens, TokenTable):
            raise ConfigError(f"tokens must be a TokenTable, got {type(self.tokens).__name__}")
        if self.token is not None:
            records: list[TokenRecord] = list(self.tokens) if self.tokens is not None else []
            records += list(TokenTable.single(self.token))
            object.__setattr__(self, "tokens", TokenTable(records))
            object.__setattr__(self, "token", None)  # only the hash is kept
        for name, low in (("max_sessions", 1), ("max_live_roles", 1), ("max_batch", 1),
                          ("max_concurrent_evaluations", 1), ("max_sessions_per_token", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("max_request_bytes", "max_material_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1024):
                raise ConfigError(f"{name} must be None or an int >= 1024, got {value!r}")
        c = self.max_concurrent_requests
        if isinstance(c, bool) or not isinstance(c, int) or c < self.max_concurrent_evaluations:
            raise ConfigError(f"max_concurrent_requests must be an int >= max_concurrent_evaluations "
                              f"({self.max_concurrent_evaluations}), got {c!r}")
        if self.executor is not None and (not isinstance(self.executor, str) or not self.executor.strip()):
            raise ConfigError(f"executor must be None or an executor URL such as 'fork:2', 'local' or "
                              f"'ray://host:10001', got {self.executor!r}")
        if not self.session_ttl > 0:
            raise ConfigError(f"session_ttl must be > 0 seconds, got {self.session_ttl!r}")
        if not self.admission_timeout > 0:
            raise ConfigError(f"admission_timeout must be > 0 seconds, got {self.admission_timeout!r}")
