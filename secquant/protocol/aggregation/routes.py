"""Route handlers of the aggregator (all under ``/v1``).

==============================================  ==============================================
``GET /v1/health``                              liveness, no authentication
``POST /v1/rounds``                             the key-holder's signed round announcement
``GET /v1/rounds/{id}``                         round status with the signed announcement
``POST /v1/rounds/{id}/submissions``            a party-signed ``Submission`` frame (update or top-up)
``POST /v1/rounds/{id}/close``                  the key-holder's signed close command
``GET /v1/rounds/{id}/aggregate``               the ``Aggregate`` frame (state ``ready`` only)
==============================================  ==============================================

Every route but ``/health`` needs the bearer token, a network gate only: who
may open, close or submit is decided by signatures
(:mod:`secquant.protocol.aggregation.table`).  Handlers read the
:class:`~secquant.protocol.aggregation.table.RoundTable` and the
:class:`~secquant.protocol.aggregation.app.AggregatorConfig` from ``request.app.state``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from secquant.protocol.aggregation.messages import FRAME_VERSION, SUBMISSION
from secquant.protocol.aggregation.rounds import RoundStatus, SignedRecord
from secquant.protocol.aggregation.table import RoundTable
from secquant.protocol.http import BINARY_BODY, ErrorBody, binary_response_doc, check_token, read_body
from secquant.protocol.messages import decode_frame

__all__ = ["router"]

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": "see detail"} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}


def _table(request: Request, authorization: str | None) -> RoundTable:
    """The app's round table, after checking the bearer token."""
    check_token(authorization, request.app.state.aggregator_config.token)
    return request.app.state.rounds  # type: ignore[no-any-return]


@router.get("/v1/health")
def health() -> dict[str, str]:
    """Liveness check; needs no token."""
    return {"status": "ok"}


@router.post("/v1/rounds", response_model=RoundStatus, responses=_ERRORS)
def open_round(body: SignedRecord, request: Request, authorization: str | None = Header(default=None)) -> RoundStatus:
    """Open a round: the key-holder's signed announcement (config, Paillier public key, parties)."""
    return _table(request, authorization).open(body)


@router.get("/v1/rounds/{round_id}", response_model=RoundStatus, responses=_ERRORS)
def status(round_id: str, request: Request, authorization: str | None = Header(default=None)) -> RoundStatus:
    """The round's signed announcement, state, contributors and top-up assignments."""
    return _table(request, authorization).status(round_id)


@router.post("/v1/rounds/{round_id}/submissions", response_model=RoundStatus, openapi_extra=BINARY_BODY,
             responses=_ERRORS)
async def submit(round_id: str, request: Request, authorization: str | None = Header(default=None)) -> RoundStatus:
    """A party's signed, encrypted update (kind ``update``) or noise top-up (kind ``topup``)."""
    table = _table(request, authorization)
    table.status(round_id)  # 404 before parsing: an unknown round is the clearer error
    limit = request.app.state.aggregator_config.max_request_bytes
    frame = decode_frame(await read_body(request, limit), SUBMISSION, (FRAME_VERSION,))
    return table.submit(round_id, frame)


@router.post("/v1/rounds/{round_id}/close", response_model=RoundStatus, responses=_ERRORS)
def close(round_id: str, body: SignedRecord, request: Request,
          authorization: str | None = Header(default=None)) -> RoundStatus:
    """The key-holder's signed command: stop collecting, or end an incomplete top-up."""
    return _table(request, authorization).close(round_id, body)


@router.get("/v1/rounds/{round_id}/aggregate", response_class=Response,
            responses=binary_response_doc("an Aggregate frame", (401, 404, 409)))
def aggregate(round_id: str, request: Request, authorization: str | None = Header(default=None)) -> Response:
    """The encrypted sum and the signed receipts, for the key-holder; only in state ``ready``."""
    body = _table(request, authorization).aggregate(round_id)
    return Response(body, media_type="application/octet-stream")
