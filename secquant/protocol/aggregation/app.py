"""Assemble the aggregator: a separate FastAPI service (``secquant aggregate``) that never holds a secret key.

Endpoints are in :mod:`secquant.protocol.aggregation.routes`, the rounds in
:mod:`secquant.protocol.aggregation.table` and :mod:`.rounds`; the protocol is
``protocols/secure-aggregation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from secquant.errors import ConfigError
from secquant.protocol.aggregation.rounds import RoundStatus
from secquant.protocol.aggregation.routes import router
from secquant.protocol.aggregation.table import RoundTable
from secquant.protocol.http import install_error_handlers

__all__ = ["AggregatorConfig", "RoundStatus", "create_aggregator_app"]


@dataclass(frozen=True)
class AggregatorConfig:
    """Who the aggregator trusts, access control and limits.

    Attributes:
        keyholder_key: The key-holder's Ed25519 public key (a ``.pub`` path, PEM or
            raw bytes, a key object, or a list of them): only commands it signs
            open and close rounds.  Party keys come with each signed round.
        token: Bearer token: a network gate against strangers' load, not an
            identity (every role is authenticated by its signature); None only
            with ``allow_no_auth``.
        allow_no_auth: Explicit opt-out of the token gate.
        max_request_bytes: Largest body (>= 1024).
        max_rounds: Most rounds held at once (>= 1).
        round_ttl: Seconds a round lives at most after it is opened (> 0).

    Raises:
        ConfigError: no key-holder key, no token without ``allow_no_auth``, a short
            token, or a limit out of range.
    """

    keyholder_key: Any = None
    token: str | None = None
    allow_no_auth: bool = False
    max_request_bytes: int = 64 * 2**20
    max_rounds: int = 16
    round_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if self.keyholder_key is None:
            raise ConfigError("the aggregator needs the key-holder's Ed25519 public key (keyholder_key=PATH.pub); "
                              "only rounds it signs are opened")
        if self.token is None and not self.allow_no_auth:
            raise ConfigError("the aggregator needs a bearer token (or allow_no_auth=True to opt out)")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the bearer token must have at least 16 characters")
        if self.max_request_bytes < 1024 or self.max_rounds < 1 or not self.round_ttl > 0:
            raise ConfigError("max_request_bytes >= 1024, max_rounds >= 1 and round_ttl > 0 are required")

    def keyholder_keys(self) -> dict[str, Any]:
        """``{key id: Ed25519 public key}`` of the trusted key-holder(s).

        Raises:
            ConfigError: not an Ed25519 public key.
        """
        from secquant.signing import trusted_keys

        return trusted_keys(self.keyholder_key)


def create_aggregator_app(config: AggregatorConfig) -> FastAPI:
    """Build the aggregator's FastAPI application (an empty round table behind the routes)."""
    app = FastAPI(title="secquant secure-aggregation aggregator", version="2",
                  description="Sums Paillier-encrypted, party-signed client updates for rounds the key-holder "
                              "signs; see protocols/secure-aggregation.md.")
    install_error_handlers(app)
    app.state.aggregator_config = config
    app.state.rounds = RoundTable(config.max_rounds, config.round_ttl, config.keyholder_keys())
    app.include_router(router)
    return app
