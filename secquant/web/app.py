"""The client app: a FastAPI application on 127.0.0.1 that holds the secret keys and serves the page.

==============================  ====================================================================
``GET /``                       the page (``static/index.html``; CSS and JS ship in the package)
``GET /api/health``             liveness
``GET /api/models``             the models, schemes, servers, and each model's test-image gallery
``GET /api/status``             each server's health, the running job, the open sessions
``POST /api/run``               ``{"model", "scheme", "input": {"kind": "canvas"|"file"|"test", ...}}``
                                -> 202 ``{"job": id}``; bad input -> 4xx ``{"error", "detail"}``
``GET /api/jobs/{id}``          the job's stage, progress, and result or error (the page polls it)
``GET /api/wire[?job=id]``      every request the relay forwarded to a server, as sent
``/relay/{i}/v1/...``           the relay to server ``i`` (used by this app's own Client)
==============================  ====================================================================

Plaintext (drawings, images, integer inputs, decrypted scores) only ever
travels between the browser and this process.  Requests whose ``Host`` is
not this machine (127.0.0.1, localhost, ::1) are refused, so another web site
cannot drive the app through the browser (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from secquant.errors import ConfigError
from secquant.web.catalog import Catalog
from secquant.web.choices import DemoModel, DemoScheme, ServerEntry
from secquant.web.errors import DemoInputError, WebError
from secquant.web.inference import DemoClient
from secquant.web.jobs import JobRunner
from secquant.web.preprocess import canvas_to_image, decode_pixels, file_to_image
from secquant.web.relay import (
    WireLog,
    check_upstream,
    forward,
    stage_after,
    stage_before,
    stage_sent,
)
from secquant.web.servers import ServerPool

__all__ = ["PRIVACY_NOTE", "ClientAppConfig", "create_app", "static_dir"]

PRIVACY_NOTE = ("Your drawing, its integer encoding and the decrypted scores go only to this local client app "
                "(127.0.0.1), which holds the secret key. The inference server receives ciphertexts and public "
                "keys only.")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class ClientAppConfig:
    """What the client app serves.

    Attributes:
        manifest: Data set -> model entry (:func:`secquant.demo.prepare_models`).
        servers: The inference servers, one (model, scheme) each.
        token: Bearer token of the servers (None: no authentication).
        startup_timeout: Seconds a job waits for a local server that is still starting (> 0).
        max_body_bytes: Largest ``POST /api/run`` body (>= 1024).
    """

    manifest: dict[str, dict[str, Any]]
    servers: tuple[ServerEntry, ...]
    token: str | None = field(default=None, repr=False)
    startup_timeout: float = 180.0
    max_body_bytes: int = 8 * 2**20

    def __post_init__(self) -> None:
        if not self.manifest:
            raise ConfigError("the client app needs at least one model in its manifest")
        if not self.servers or not all(isinstance(s, ServerEntry) for s in self.servers):
            raise ConfigError("the client app needs a non-empty tuple of ServerEntry")
        if not self.startup_timeout > 0 or self.max_body_bytes < 1024:
            raise ConfigError("startup_timeout must be > 0 and max_body_bytes >= 1024")
        for server in self.servers:
            check_upstream(server.url)


def static_dir() -> Path:
    """The page's files, shipped as package data."""
    return Path(str(resources.files("secquant.web") / "static"))


@dataclass
class _State:
    config: ClientAppConfig
    catalog: Catalog
    pool: ServerPool
    wire: WireLog
    runner: JobRunner
    demo: DemoClient
    http: Any = None
    status_cache: tuple[float, list[dict[str, Any]]] = (0.0, [])


def create_app(config: ClientAppConfig, catalog: Catalog | None = None) -> FastAPI:
    """Build the client app.

    Args:
        config: Models, servers, token and limits.
        catalog: Already loaded models (default: load those of ``config.manifest``).

    Returns:
        A ``fastapi.FastAPI`` instance; serve it on 127.0.0.1 only.
    """
    catalog = catalog or Catalog.load(config.manifest)
    pool, wire = ServerPool(list(config.servers), config.token), WireLog()
    state = _State(config, catalog, pool, wire, JobRunner(),
                   DemoClient(catalog, pool, wire, config.token, config.startup_timeout))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(state.demo.close)
        if state.http is not None:
            await state.http.aclose()

    app = FastAPI(title="secquant demo client app", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.secquant = state
    _install_guards(app)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    _page_routes(app, state)
    _relay_route(app, state)
    return app


def _install_guards(app: FastAPI) -> None:
    @app.middleware("http")
    async def local_only(request: Request, call_next: Any) -> Response:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOCAL_HOSTS:
            return JSONResponse({"error": "ForeignHost", "detail": f"this client app answers only requests for "
                                 f"127.0.0.1 or localhost, not {host!r}"}, status_code=421)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=exc.status)


def _parse_input(state: _State, model: DemoModel, spec: Any) -> tuple[Any, dict[str, Any]]:
    """The preprocessed ``(side, side)`` image and where it came from."""
    if not isinstance(spec, dict):
        raise DemoInputError("input must be an object with a kind: canvas, file or test", code="BadInput")
    kind = spec.get("kind")
    if kind == "test":
        local = state.catalog.get(model)
        image = local.test_image(spec.get("index"))
        return image, {"kind": "test", "index": spec["index"], "label": int(local.y_test[spec["index"]])}
    if kind in ("canvas", "file"):
        pixels = decode_pixels(spec.get("pixels"), spec.get("width"), spec.get("height"))
        if kind == "canvas":
            return canvas_to_image(pixels, model), {"kind": "canvas"}
        return file_to_image(pixels, model), {"kind": "file", "name": str(spec.get("name", ""))[:120]}
    raise DemoInputError(f"input kind must be canvas, file or test, got {kind!r}", code="BadInput")


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise DemoInputError(f"request body of {declared} bytes is over the {limit}-byte limit", code="TooLarge")
    body = await request.body()
    if len(body) > limit:
        raise DemoInputError(f"request body of {len(body)} bytes is over the {limit}-byte limit", code="TooLarge")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise DemoInputError(f"the body is not JSON ({exc})", code="BadInput") from exc
    if not isinstance(data, dict):
        raise DemoInputError("the body must be a JSON object", code="BadInput")
    return data


def _page_routes(app: FastAPI, state: _State) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"models": [dict(m.describe(), gallery=m.gallery()) for m in state.catalog.models.values()],
                "schemes": [{"id": s.value, "title": s.title, "exact": s.exact, "note": s.note} for s in DemoScheme],
                "servers": [dict(e.to_dict(), index=i, pid=None, log=None) for i, e in enumerate(state.pool.entries)],
                "privacy": PRIVACY_NOTE}

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        stamp, servers = state.status_cache
        if time.monotonic() - stamp > 1.0:
            servers = await asyncio.to_thread(state.pool.status)
            state.status_cache = (time.monotonic(), servers)
        job = state.runner.current
        return {"servers": servers, "job": job.snapshot() if job else None, "sessions": state.demo.open_sessions()}

    @app.post("/api/run", status_code=202)
    async def run(request: Request) -> dict[str, str]:
        data = await _read_json(request, state.config.max_body_bytes)
        model, scheme = DemoModel.parse(data.get("model")), DemoScheme.parse(data.get("scheme"))
        image, source = _parse_input(state, model, data.get("input"))
        relay = f"http://127.0.0.1:{request.scope['server'][1]}/relay"
        job = state.runner.submit(f"{model.title} under {scheme.title}",
                                  lambda job: state.demo.run(job, relay, model, scheme, image, source))
        return {"job": job.id}

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = state.runner.get(job_id)
        if found is None:
            raise DemoInputError(f"no job {job_id!r} (finished jobs are kept for a while only)", code="UnknownJob")
        return found.snapshot()

    @app.get("/api/wire")
    def wire(job: str | None = None) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in state.wire.records(job)]}


def _relay_route(app: FastAPI, state: _State) -> None:
    @app.api_route("/relay/{index}/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def relay(index: int, path: str, request: Request) -> Response:
        import httpx

        entries = state.pool.entries
        if not 0 <= index < len(entries):
            return JSONResponse({"error": "NotFound", "detail": f"no server {index}"}, status_code=404)
        if state.http is None:
            state.http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))
        body = await request.body()
        job = state.runner.current
        record = state.wire.add(job.id if job else None, entries[index].url, request.method, f"/v1/{path}", body)
        rounds = sum(r.path.endswith("/evaluate") for r in state.wire.records(record.job)) if job else 0

        def progress(done: int, total: int) -> None:
            if job is not None and total:
                job.set_progress(done, total)
                if done >= total and (text := stage_sent(record, rounds)):
                    job.set_stage(text)

        if job is not None and (text := stage_before(record, rounds)):
            job.set_stage(text)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        status, data, kind = await forward(state.http, entries[index].url, request.method, f"/v1/{path}",
                                           headers, body, record, progress)
        if job is not None and (text := stage_after(record)):
            job.set_stage(text)
        return Response(data, status_code=status, media_type=kind or None)
