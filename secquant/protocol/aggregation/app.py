"""Assemble the aggregator: a separate FastAPI service (``secquant aggregate``) that never holds a secret key.

Endpoints are in :mod:`secquant.protocol.aggregation.routes`, the rounds in
:mod:`secquant.protocol.aggregation.rounds`; the protocol is
``protocols/secure-aggregation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from secquant.errors import ConfigError
from secquant.protocol.aggregation.rounds import RoundStatus, RoundTable
from secquant.protocol.aggregation.routes import router
from secquant.protocol.http import install_error_handlers

__all__ = ["AggregatorConfig", "RoundStatus", "create_aggregator_app"]


@dataclass(frozen=True)
class AggregatorConfig:
    """Access control and limits of the aggregator.

    Attributes:
        token: Bearer token of every party; None only with ``allow_no_auth``.
        allow_no_auth: Explicit opt-out of authentication.
        max_request_bytes: Largest body (>= 1024).
        max_rounds: Most rounds held at once (>= 1).
        round_ttl: Seconds a round lives after it is opened (> 0).

    Raises:
        ConfigError: no token without ``allow_no_auth``, a short token, or a limit out of range.
    """

    token: str | None = None
    allow_no_auth: bool = False
    max_request_bytes: int = 64 * 2**20
    max_rounds: int = 16
    round_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if self.token is None and not self.allow_no_auth:
            raise ConfigError("the aggregator needs a bearer token (or allow_no_auth=True to opt out)")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the bearer token must have at least 16 characters")
        if self.max_request_bytes < 1024 or self.max_rounds < 1 or not self.round_ttl > 0:
            raise ConfigError("max_request_bytes >= 1024, max_rounds >= 1 and round_ttl > 0 are required")


def create_aggregator_app(config: AggregatorConfig) -> FastAPI:
    """Build the aggregator's FastAPI application (an empty round table behind the routes)."""
    app = FastAPI(title="secquant secure-aggregation aggregator", version="1",
                  description="Sums Paillier-encrypted client updates; see protocols/secure-aggregation.md.")
    install_error_handlers(app)
    app.state.aggregator_config = config
    app.state.rounds = RoundTable(config.max_rounds, config.round_ttl)
    app.include_router(router)
    return app
