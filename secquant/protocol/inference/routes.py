"""Route handlers of the encrypted-inference service (all under ``/v1``).

==========================================  =================================================
``GET /v1/health``                          liveness, no authentication
``GET /v1/info``                            scheme, digests, options, shapes and limits
``GET /v1/client-spec``                     what a client needs to build its role; no weights
``GET /v1/model``                           the model artifact (only with ``publish_model=True``; off by default)
``POST /v1/sessions``                       ``SessionCreate`` frame -> session id (JSON)
``POST /v1/sessions/{id}/evaluate``         ``EvaluateRequest`` frame -> ``EvaluateResponse``
``DELETE /v1/sessions/{id}``                end a session, delete its cached material
``GET /v1/admin/tokens``                    per-token records (no hashes), sessions and usage (admin scope)
==========================================  =================================================

Every route but ``/health`` needs ``Authorization: Bearer <token>`` when the
server has tokens; the admin route needs the ``admin`` scope, the others
``infer``.  A session belongs to the token that created it: any other token
gets 404 for it.  Requests are checked in this order, cheapest first: token,
scope and rate limit; a request slot (``max_concurrent_requests``, taken
*before* the body is read); the body limit; the session; the frame; the
input count read from the payload itself (refused if it differs from the
declared batch); the query and privacy budgets; then the evaluation slot, or,
for THROUGHPUT-mode BFV/CKKS on a server with an executor, the executor
(:mod:`~secquant.protocol.inference.offload`).
Handlers read the :class:`~secquant.protocol.inference.state.ServiceState`
from ``request.app.state.secquant``; the app itself is assembled in
:mod:`secquant.protocol.inference.app`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from secquant.errors import SecquantError
from secquant.protocol.errors import CiphertextError, MessageError, ParameterMismatchError, SessionNotFoundError
from secquant.protocol.http import BINARY_BODY, ErrorBody, binary_response_doc, read_body
from secquant.protocol.inference.limits import payload_inputs
from secquant.protocol.inference.state import Health, ServiceInfo, ServiceState, SessionInfo, TokenUsage
from secquant.protocol.inference.tokens import Scope
from secquant.protocol.messages import (
    EVALUATE_REQUEST,
    EVALUATE_RESPONSE,
    SESSION_CREATE,
    Frame,
    decode_frame,
    encode_frame,
    require,
)

__all__ = ["router"]

router = APIRouter()

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
    403: {"model": ErrorBody, "description": "the token lacks the scope"},
    429: {"model": ErrorBody, "description": "rate limit; see Retry-After"},
}
_OCTET = "application/octet-stream"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": "see detail"} for code in codes}


def _state(request: Request) -> ServiceState:
    return request.app.state.secquant


@router.get("/v1/health", response_model=Health)
def health() -> Health:
    """Liveness check; needs no token."""
    return Health(status="ok")


@router.get("/v1/info", response_model=ServiceInfo, responses=_AUTH_ERRORS)
def info(request: Request, authorization: str | None = Header(default=None)) -> Any:
    """Scheme, digests, compile options, shapes, limits, release policy and the (signed) service spec."""
    state = _state(request)
    state.ready(authorization)
    return state.info


@router.get("/v1/client-spec", response_class=Response,
            responses=binary_response_doc("the backend's client spec (Backend.client_spec); no weights",
                                          (401, 403, 429)))
def client_spec(request: Request, authorization: str | None = Header(default=None)) -> Response:
    """Everything a client needs to build its role: shapes, quantization, output bound, HE parameters."""
    state = _state(request)
    state.ready(authorization)
    return Response(state.client_spec, media_type=_OCTET)


@router.get("/v1/model", response_class=Response,
            responses=binary_response_doc("the model artifact (only with publish_model=True)", (401, 403, 404, 429)))
def model(request: Request, authorization: str | None = Header(default=None)) -> Response:
    """The whole model artifact, weights included; served only when the operator opts in."""
    state = _state(request)
    binding, _, _ = state.ready(authorization)
    if not state.config.publish_model:
        raise SessionNotFoundError("this server does not publish its model (clients need only "
                                   "GET /v1/client-spec); start it with --publish-model to opt in")
    return Response(binding.artifact, media_type=_OCTET)


@router.post("/v1/sessions", response_model=SessionInfo, openapi_extra=BINARY_BODY,
             responses=_errors(400, 401, 403, 409, 413, 422, 429, 503))
async def create_session(request: Request, authorization: str | None = Header(default=None)) -> SessionInfo:
    """Upload public and evaluation material once (a SessionCreate frame); refused if it holds a secret key."""
    state = _state(request)
    binding, store, record = state.ready(authorization)
    async with state.admission():
        frame = decode_frame(await read_body(request, state.limits.material), SESSION_CREATE)
        if require(frame.meta, "fingerprint", str, "SessionCreate") != binding.fingerprint:
            raise ParameterMismatchError(
                "the session material was made for other parameters (fingerprint mismatch); "
                "fetch GET /v1/info and compile the same scheme, model and options")
        sid, session = await asyncio.to_thread(store.create, bytes(frame.payload), record.id,
                                               state.session_cap(record))
    return SessionInfo(session_id=sid, expires_in=session.expires - time.time(), fingerprint=binding.fingerprint)


@router.post("/v1/sessions/{session_id}/evaluate", response_class=Response, openapi_extra=BINARY_BODY,
             responses=binary_response_doc("an EvaluateResponse frame", (400, 401, 403, 404, 409, 413, 422, 429, 503)))
async def evaluate(session_id: str, request: Request, authorization: str | None = Header(default=None)) -> Response:
    """Evaluate the model on an encrypted batch (an EvaluateRequest frame)."""
    state = _state(request)
    binding, store, record = state.ready(authorization)
    async with state.admission():
        body = await read_body(request, state.limits.evaluate)
        session, role = await asyncio.to_thread(store.get, session_id, record.id)
        frame = decode_frame(body, EVALUATE_REQUEST)
        if require(frame.meta, "fingerprint", str, "EvaluateRequest") != binding.fingerprint:
            raise ParameterMismatchError("the ciphertexts were made for other parameters (fingerprint mismatch)")
        batch = require(frame.meta, "batch", int, "EvaluateRequest")
        if not 1 <= batch <= state.limits.max_batch:
            raise MessageError(f"batch must lie in [1, {state.limits.max_batch}], got {batch}; split the inputs")
        count = await asyncio.to_thread(payload_inputs, binding, bytes(frame.payload))
        if count.inputs != batch:
            raise MessageError(f"the request declares a batch of {batch} but its payload carries {count.inputs} "
                               "inputs; refusing it")
        release = binding.release
        charge = state.quotas.charge(record, count.charged,  # type: ignore[union-attr]
                                     count.charged if count.final and release.noisy else 0)
        try:
            if state.offload is not None:  # THROUGHPUT BFV/CKKS: on the executor, no evaluation slot here
                t0 = time.perf_counter()
                result = await state.offload.evaluate(session.key, role, functools.partial(store.material, session),
                                                      bytes(frame.payload))
            else:
                async with state.evaluation_gate():
                    t0 = time.perf_counter()
                    post = release.apply_plain if binding.scheme == "plain" and release.policy.label != "full" else None
                    result = await asyncio.to_thread(_evaluate, session.lock, role, bytes(frame.payload), post)
            seconds = time.perf_counter() - t0
        except BaseException:
            state.quotas.refund(charge)  # type: ignore[union-attr]
            raise
    meta = {"fingerprint": binding.fingerprint, "batch": batch, "seconds": seconds}
    return Response(encode_frame(Frame(EVALUATE_RESPONSE, 1, meta, result)), media_type=_OCTET)


@router.delete("/v1/sessions/{session_id}", status_code=204, response_class=Response, response_model=None,
               responses=_errors(401, 403, 404, 429))
def delete_session(session_id: str, request: Request, authorization: str | None = Header(default=None)) -> Response:
    """End a session and delete its cached material."""
    _, store, record = _state(request).ready(authorization)
    store.delete(session_id, record.id)
    return Response(status_code=204)


@router.get("/v1/admin/tokens", response_model=list[TokenUsage], responses=_AUTH_ERRORS)
def admin_tokens(request: Request, authorization: str | None = Header(default=None)) -> list[TokenUsage]:
    """Every token's record (never its hash), live sessions and usage; needs the admin scope."""
    state = _state(request)
    _, store, _ = state.ready(authorization, Scope.ADMIN)
    tokens = list(state.config.tokens or [])
    return [TokenUsage(id=t.id, record=t.public(), sessions=store.count(t.id),
                       usage=state.quotas.report(t)) for t in tokens]  # type: ignore[union-attr]


def _evaluate(lock: Any, role: Any, payload: bytes, post: Any = None) -> bytes:
    with lock:
        try:
            result = role.evaluate(payload)
            return post(result) if post is not None else result
        except SecquantError:
            raise
        except Exception as exc:  # the backend choked on client bytes
            raise CiphertextError(f"the backend could not evaluate this batch: {type(exc).__name__}: {exc}") from exc
