"""The aggregator: a separate FastAPI service (``secquant aggregate``) that never holds a secret key.

It keeps, per round, the public key, the running homomorphic sum (product of
ciphertexts mod n²) and the ids of the clients whose messages are in it; it
never keeps individual ciphertexts and never sees a plaintext.

==============================================  ==============================================
``GET /v1/health``                              liveness, no authentication
``POST /v1/rounds``                             key-holder opens a round (JSON: config + public key)
``GET /v1/rounds/{id}``                         round status, config, top-up assignments
``POST /v1/rounds/{id}/submissions``            a ``Submission`` frame (update or top-up)
``POST /v1/rounds/{id}/close``                  stop collecting; decide ready / topup / refused
``GET /v1/rounds/{id}/aggregate``               the ``Aggregate`` frame (state ``ready`` only)
==============================================  ==============================================

States: ``collecting`` → ``ready`` (all planned clients arrived, or enough
noise shares at close) | ``topup`` (too few shares, policy top_up: survivors
are assigned whole extra shares) | ``refused`` (too few shares, policy refuse;
or a top-up phase closed incomplete).  ``topup`` → ``ready`` once every
assigned top-up arrived.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from secquant.backends.paillier_keys import load_public_key
from secquant.errors import ConfigError
from secquant.protocol.aggregation_config import DropoutPolicy, RoundConfig
from secquant.protocol.aggregation_encoding import decode_ciphertexts, encode_ciphertexts
from secquant.protocol.aggregation_messages import AGGREGATE, SUBMISSION
from secquant.protocol.errors import MessageError, RoundStateError, SessionLimitError, SessionNotFoundError
from secquant.protocol.http import (
    BINARY_BODY,
    ErrorBody,
    binary_response_doc,
    check_token,
    install_error_handlers,
    read_body,
)
from secquant.protocol.messages import Frame, decode_frame, encode_frame, require

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


class RoundOpen(BaseModel):
    """Body of ``POST /v1/rounds``."""

    config: dict[str, Any]
    public_key: str


class RoundStatus(BaseModel):
    """Answer of ``GET /v1/rounds/{id}`` (and of open/close)."""

    round_id: str
    state: str
    config: dict[str, Any]
    public_key: str
    contributors: list[str]
    noise_shares: int
    topup_assignments: dict[str, int]
    topups_received: list[str]
    reason: str


@dataclass
class _Round:
    rid: str
    config: RoundConfig
    n: int
    public_key: str
    expires: float
    state: str = "collecting"
    acc: list[int] = field(default_factory=list)
    contributors: list[str] = field(default_factory=list)
    noise_shares: int = 0
    assignments: dict[str, int] = field(default_factory=dict)
    topups: list[str] = field(default_factory=list)
    reason: str = ""

    def status(self) -> RoundStatus:
        return RoundStatus(round_id=self.rid, state=self.state, config=self.config.to_json(),
                           public_key=self.public_key,
                           contributors=list(self.contributors), noise_shares=self.noise_shares,
                           topup_assignments=dict(self.assignments), topups_received=list(self.topups),
                           reason=self.reason)

    def add(self, cts: list[int]) -> None:
        n2 = self.n * self.n
        self.acc = cts if not self.acc else [a * c % n2 for a, c in zip(self.acc, cts)]

    def decide(self) -> None:
        """Close collection: ready, topup or refused."""
        need = self.config.required_shares
        k = len(self.contributors)
        if self.noise_shares >= need:
            self.state = "ready"
        elif k == 0:
            self.state, self.reason = "refused", "no client contributed"
        elif self.config.dropout_policy is DropoutPolicy.REFUSE:
            self.state = "refused"
            self.reason = f"only {k} of {self.config.n_clients} clients contributed; the sum would carry " \
                          f"{self.noise_shares} < {need} noise shares and the policy is refuse"
        else:
            missing = need - self.noise_shares
            order = sorted(self.contributors)
            self.assignments = {cid: missing // k + (i < missing % k) for i, cid in enumerate(order)}
            self.assignments = {c: s for c, s in self.assignments.items() if s > 0}
            self.state = "topup"


def create_aggregator_app(config: AggregatorConfig) -> FastAPI:
    """Build the aggregator's FastAPI application."""
    rounds: dict[str, _Round] = {}
    lock = threading.Lock()
    app = FastAPI(title="secquant secure-aggregation aggregator", version="1",
                  description="Sums Paillier-encrypted client updates; see protocols/secure-aggregation.md.")
    install_error_handlers(app)
    errors = {code: {"model": ErrorBody, "description": "see detail"} for code in (400, 401, 404, 409, 413, 422, 429)}

    def get(rid: str) -> _Round:
        now = time.time()
        for key in [k for k, r in rounds.items() if r.expires <= now]:
            del rounds[key]
        rnd = rounds.get(rid)
        if rnd is None:
            raise SessionNotFoundError(f"unknown or expired round {rid[:12]!r}")
        return rnd

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        """Liveness check; needs no token."""
        return {"status": "ok"}

    @app.post("/v1/rounds", response_model=RoundStatus, responses=errors)
    def open_round(body: RoundOpen, authorization: str | None = Header(default=None)) -> RoundStatus:
        """Open a round with its public configuration and the key-holder's Paillier public key."""
        check_token(authorization, config.token)
        cfg = RoundConfig.from_json(body.config)
        try:
            material = base64.b64decode(body.public_key, validate=True)
        except ValueError as exc:
            raise MessageError(f"public_key must be base64: {exc}") from exc
        key = load_public_key(material, allow_insecure=cfg.allow_insecure_key_bits)  # refuses private keys (403)
        n = int(key.n)
        if key.bits != cfg.key_bits:
            raise ConfigError(f"the public key has {key.bits} bits; the config says key_bits={cfg.key_bits}")
        with lock:
            now = time.time()
            for key in [k for k, r in rounds.items() if r.expires <= now]:
                del rounds[key]
            if len(rounds) >= config.max_rounds:
                raise SessionLimitError(f"the aggregator holds its maximum of {config.max_rounds} rounds")
            rid = secrets.token_urlsafe(16)
            rounds[rid] = _Round(rid=rid, config=cfg, n=n, public_key=body.public_key, expires=now + config.round_ttl)
            return rounds[rid].status()

    @app.get("/v1/rounds/{round_id}", response_model=RoundStatus, responses=errors)
    def status(round_id: str, authorization: str | None = Header(default=None)) -> RoundStatus:
        """The round's state, contributors and top-up assignments."""
        check_token(authorization, config.token)
        with lock:
            return get(round_id).status()

    @app.post("/v1/rounds/{round_id}/submissions", response_model=RoundStatus, openapi_extra=BINARY_BODY,
              responses=errors)
    async def submit(round_id: str, request: Request, authorization: str | None = Header(default=None)) -> RoundStatus:
        """A client's encrypted update (kind ``update``) or noise top-up (kind ``topup``)."""
        check_token(authorization, config.token)
        with lock:
            get(round_id)  # 404 before parsing: an unknown round is the clearer error
        frame = decode_frame(await read_body(request, config.max_request_bytes), SUBMISSION)
        cid = require(frame.meta, "client_id", str, "Submission")
        kind = require(frame.meta, "kind", str, "Submission")
        if require(frame.meta, "round_id", str, "Submission") != round_id:
            raise MessageError("the submission names another round")
        with lock:
            rnd = get(round_id)
            cts = decode_ciphertexts(bytes(frame.payload), rnd.n, rnd.config.ciphertexts_per_message())
            if kind == "update":
                if rnd.state != "collecting":
                    raise RoundStateError(f"round is {rnd.state}; updates are accepted only while collecting")
                if cid in rnd.contributors:
                    raise RoundStateError(f"client {cid!r} already submitted to this round")
                if len(rnd.contributors) >= rnd.config.n_clients:
                    raise RoundStateError(f"the round already has its {rnd.config.n_clients} clients")
                rnd.add(cts)
                rnd.contributors.append(cid)
                rnd.noise_shares += 1
                if len(rnd.contributors) == rnd.config.n_clients:
                    rnd.decide()
            elif kind == "topup":
                if rnd.state != "topup" or cid not in rnd.assignments or cid in rnd.topups:
                    raise RoundStateError(f"no top-up is expected from {cid!r} (round is {rnd.state})")
                shares = require(frame.meta, "shares", int, "Submission")
                if shares != rnd.assignments[cid]:
                    raise MessageError(f"client {cid!r} was assigned {rnd.assignments[cid]} shares, sent {shares}")
                rnd.add(cts)
                rnd.topups.append(cid)
                rnd.noise_shares += shares
                if set(rnd.topups) == set(rnd.assignments):
                    rnd.state = "ready"
            else:
                raise MessageError(f"submission kind must be 'update' or 'topup', got {kind!r}")
            return rnd.status()

    @app.post("/v1/rounds/{round_id}/close", response_model=RoundStatus, responses=errors)
    def close(round_id: str, authorization: str | None = Header(default=None)) -> RoundStatus:
        """Stop collecting (dropouts are whoever has not submitted) or end an incomplete top-up."""
        check_token(authorization, config.token)
        with lock:
            rnd = get(round_id)
            if rnd.state == "collecting":
                rnd.decide()
            elif rnd.state == "topup":
                missing = sorted(set(rnd.assignments) - set(rnd.topups))
                rnd.state, rnd.reason = "refused", f"top-up incomplete: no noise from {missing}"
            return rnd.status()

    @app.get("/v1/rounds/{round_id}/aggregate", response_class=Response,
             responses=binary_response_doc("an Aggregate frame", (401, 404, 409)))
    def aggregate(round_id: str, authorization: str | None = Header(default=None)) -> Response:
        """The encrypted sum, for the key-holder; only in state ``ready``."""
        check_token(authorization, config.token)
        with lock:
            rnd = get(round_id)
            if rnd.state != "ready":
                raise RoundStateError(f"round is {rnd.state}, not ready{': ' + rnd.reason if rnd.reason else ''}")
            meta = {"round_id": rnd.rid, "contributors": list(rnd.contributors), "noise_shares": rnd.noise_shares,
                    "topups": list(rnd.topups), "ciphertexts": len(rnd.acc)}
            body = encode_frame(Frame(AGGREGATE, 1, meta, encode_ciphertexts(rnd.acc, rnd.n)))
        return Response(body, media_type="application/octet-stream")

    return app
