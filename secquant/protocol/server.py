"""The encrypted-inference service: a FastAPI application served by uvicorn.

Endpoints (all under ``/v1``; every one but ``/health`` needs
``Authorization: Bearer <token>`` when the server has a token):

==========================================  =================================================
``GET /v1/health``                          liveness, no authentication
``GET /v1/info``                            scheme, digests, options, shapes and limits
``GET /v1/client-spec``                     what a client needs to build its role; no weights
``GET /v1/model``                           the model artifact (only with ``publish_model=True``; off by default)
``POST /v1/sessions``                       ``SessionCreate`` frame -> session id (JSON)
``POST /v1/sessions/{id}/evaluate``         ``EvaluateRequest`` frame -> ``EvaluateResponse``
``DELETE /v1/sessions/{id}``                end a session, delete its cached material
==========================================  =================================================

The server holds the quantized model and, per session, the client's public
material; it never holds a secret key, plaintext inputs or outputs.  Clients
build their role from the backend's client spec (``Backend.client_spec``):
shapes, input quantization, output scale and bound, encryption parameters and
layout, never a weight (in Paillier interactive mode, the activation
coefficients the client applies).  Messages
are described in :mod:`secquant.protocol.messages` and ``protocols/inference-service.md``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from secquant.errors import ConfigError, SecquantError
from secquant.protocol.binding import ModelBinding, artifact_digest
from secquant.protocol.errors import CiphertextError, MessageError, ParameterMismatchError, SessionNotFoundError
from secquant.protocol.http import (
    BINARY_BODY,
    ErrorBody,
    binary_response_doc,
    check_token,
    install_error_handlers,
    read_body,
)
from secquant.protocol.messages import (
    EVALUATE_REQUEST,
    EVALUATE_RESPONSE,
    PROTOCOL_VERSION,
    SESSION_CREATE,
    Frame,
    decode_frame,
    encode_frame,
    require,
)
from secquant.protocol.sessions import SessionStore

__all__ = ["ServiceConfig", "ServiceInfo", "SessionInfo", "create_app", "openapi_schema"]

log = logging.getLogger("secquant.protocol")


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


class ServiceInfo(BaseModel):
    """Answer of ``GET /v1/info``: what a client needs to compile matching parameters."""

    protocol_version: int
    scheme: str
    model_digest: str
    fingerprint: str
    options: dict[str, Any]
    input_shape: list[int]
    output_shape: list[int]
    parameters: dict[str, Any]
    max_request_bytes: int
    max_batch: int
    session_ttl: float
    publish_model: bool
    client_spec_digest: str


class SessionInfo(BaseModel):
    """Answer of ``POST /v1/sessions``."""

    session_id: str
    expires_in: float
    fingerprint: str


class Health(BaseModel):
    """Answer of ``GET /v1/health``."""

    status: str


@dataclass
class _State:
    binding: ModelBinding | None
    config: ServiceConfig
    store: SessionStore | None = None
    gate: asyncio.Semaphore | None = None
    info: dict[str, Any] = field(default_factory=dict)
    client_spec: bytes = b""


def _build_role(binding: ModelBinding) -> Any:
    def build(material: bytes) -> Any:
        try:
            return binding.em.server(material)
        except SecquantError:
            raise
        except Exception as exc:  # the backend's parser failed on client bytes
            raise CiphertextError(f"cannot read the public material: {type(exc).__name__}: {exc}") from exc

    return build


def _json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def create_app(binding: ModelBinding | None, config: ServiceConfig) -> Any:
    """Build the FastAPI application.

    Args:
        binding: The compiled model; None builds a model-less app whose only use
            is :func:`openapi_schema`.
        config: Access control and limits.

    Returns:
        A ``fastapi.FastAPI`` instance.
    """
    state = _State(binding=binding, config=config)
    if binding is not None:
        cache = config.cache_dir or tempfile.mkdtemp(prefix="secquant-keys-")
        state.store = SessionStore(Path(cache), binding.fingerprint, _build_role(binding), ttl=config.session_ttl,
                                   max_sessions=config.max_sessions, max_live_roles=config.max_live_roles)
        state.client_spec = binding.em.backend.client_spec()
        state.info = ServiceInfo(
            protocol_version=PROTOCOL_VERSION, scheme=binding.scheme, model_digest=binding.model_digest,
            fingerprint=binding.fingerprint, options=binding.options, input_shape=list(binding.qm.input_shape),
            output_shape=list(binding.qm.output_shape), parameters=_json_safe(binding.em.parameters()),
            max_request_bytes=config.max_request_bytes, max_batch=config.max_batch,
            session_ttl=config.session_ttl, publish_model=config.publish_model,
            client_spec_digest=artifact_digest(state.client_spec),
        ).model_dump()
        if config.token is None:
            log.warning("SECQUANT SERVICE RUNS WITHOUT AUTHENTICATION: anyone who reaches it can use it")

    app = FastAPI(title="secquant encrypted-inference service", version=str(PROTOCOL_VERSION),
                  description="Encrypted inference on a quantized model; see protocols/inference-service.md.")
    install_error_handlers(app)
    app.state.secquant = state

    def ready(authorization: str | None) -> tuple[ModelBinding, SessionStore]:
        check_token(authorization, config.token)
        if state.binding is None or state.store is None:
            raise ConfigError("this app was built without a model (schema export only)")
        return state.binding, state.store

    auth_errors = {401: {"model": ErrorBody, "description": "missing or wrong bearer token"}}

    @app.get("/v1/health", response_model=Health)
    def health() -> Health:
        """Liveness check; needs no token."""
        return Health(status="ok")

    @app.get("/v1/info", response_model=ServiceInfo, responses=auth_errors)
    def info(authorization: str | None = Header(default=None)) -> Any:
        """Scheme, digests, compile options, shapes and limits."""
        ready(authorization)
        return state.info

    @app.get("/v1/client-spec", response_class=Response,
             responses=binary_response_doc("the backend's client spec (Backend.client_spec); no weights", (401,)))
    def client_spec(authorization: str | None = Header(default=None)) -> Response:
        """Everything a client needs to build its role: shapes, quantization, output bound, HE parameters."""
        ready(authorization)
        return Response(state.client_spec, media_type="application/octet-stream")

    @app.get("/v1/model", response_class=Response,
             responses=binary_response_doc("the model artifact (only with publish_model=True)", (401, 404)))
    def model(authorization: str | None = Header(default=None)) -> Response:
        """The whole model artifact, weights included; served only when the operator opts in."""
        binding, _ = ready(authorization)
        if not config.publish_model:
            raise SessionNotFoundError("this server does not publish its model (clients need only "
                                       "GET /v1/client-spec); start it with --publish-model to opt in")
        return Response(binding.artifact, media_type="application/octet-stream")

    @app.post("/v1/sessions", response_model=SessionInfo, openapi_extra=BINARY_BODY,
              responses={code: {"model": ErrorBody, "description": "see detail"}
                         for code in (400, 401, 403, 409, 413, 422, 429)})
    async def create_session(request: Request, authorization: str | None = Header(default=None)) -> SessionInfo:
        """Upload public and evaluation material once (a SessionCreate frame); refused if it holds a secret key."""
        binding, store = ready(authorization)
        frame = decode_frame(await read_body(request, config.max_request_bytes), SESSION_CREATE)
        if require(frame.meta, "fingerprint", str, "SessionCreate") != binding.fingerprint:
            raise ParameterMismatchError(
                "the session material was made for other parameters (fingerprint mismatch); "
                "fetch GET /v1/info and compile the same scheme, model and options")
        sid, session = await asyncio.to_thread(store.create, bytes(frame.payload))
        return SessionInfo(session_id=sid, expires_in=session.expires - time.time(), fingerprint=binding.fingerprint)

    @app.post("/v1/sessions/{session_id}/evaluate", response_class=Response, openapi_extra=BINARY_BODY,
              responses=binary_response_doc("an EvaluateResponse frame", (400, 401, 404, 409, 413, 422)))
    async def evaluate(session_id: str, request: Request, authorization: str | None = Header(default=None)) -> Response:
        """Evaluate the model on an encrypted batch (an EvaluateRequest frame)."""
        binding, store = ready(authorization)
        body = await read_body(request, config.max_request_bytes)
        session, role = await asyncio.to_thread(store.get, session_id)
        frame = decode_frame(body, EVALUATE_REQUEST)
        if require(frame.meta, "fingerprint", str, "EvaluateRequest") != binding.fingerprint:
            raise ParameterMismatchError("the ciphertexts were made for other parameters (fingerprint mismatch)")
        batch = require(frame.meta, "batch", int, "EvaluateRequest")
        if not 1 <= batch <= config.max_batch:
            raise MessageError(f"batch must lie in [1, {config.max_batch}], got {batch}; split the inputs")
        if state.gate is None:
            state.gate = asyncio.Semaphore(config.max_concurrent_evaluations)
        async with state.gate:
            t0 = time.perf_counter()
            result = await asyncio.to_thread(_evaluate, session.lock, role, bytes(frame.payload))
            seconds = time.perf_counter() - t0
        meta = {"fingerprint": binding.fingerprint, "batch": batch, "seconds": seconds}
        out = encode_frame(Frame(EVALUATE_RESPONSE, 1, meta, result))
        return Response(out, media_type="application/octet-stream")

    @app.delete("/v1/sessions/{session_id}", status_code=204, response_class=Response, response_model=None,
                responses={code: {"model": ErrorBody, "description": "see detail"} for code in (401, 404)})
    def delete_session(session_id: str, authorization: str | None = Header(default=None)) -> Response:
        """End a session and delete its cached material."""
        ready(authorization)[1].delete(session_id)
        return Response(status_code=204)

    return app


def _evaluate(lock: Any, role: Any, payload: bytes) -> bytes:
    with lock:
        try:
            return role.evaluate(payload)
        except SecquantError:
            raise
        except Exception as exc:  # the backend choked on client bytes
            raise CiphertextError(f"the backend could not evaluate this batch: {type(exc).__name__}: {exc}") from exc


def openapi_schema() -> dict[str, Any]:
    """The service's OpenAPI document (what ``protocols/openapi.json`` holds)."""
    return create_app(None, ServiceConfig(allow_no_auth=True)).openapi()


def default_cache_dir() -> Path:
    """``$SECQUANT_CACHE_DIR`` or ``~/.cache/secquant/keys``."""
    env = os.environ.get("SECQUANT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "secquant" / "keys"
