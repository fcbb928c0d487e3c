"""Assemble the encrypted-inference service: a FastAPI application served by uvicorn.

The server holds the quantized model and, per session, the client's public
material; it never holds a secret key, plaintext inputs or outputs.  Clients
build their role from the backend's client spec (``Backend.client_spec``):
shapes, input quantization, output scale and bound, encryption parameters and
layout, never a weight (in Paillier interactive mode, the activation
coefficients the client applies).  Endpoints are in
:mod:`secquant.protocol.inference.routes`, messages in
:mod:`secquant.protocol.messages` and ``protocols/inference-service.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from secquant.protocol.http import install_error_handlers
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.config import ServiceConfig
from secquant.protocol.inference.routes import router
from secquant.protocol.inference.state import ServiceState
from secquant.protocol.messages import PROTOCOL_VERSION

__all__ = ["create_app", "default_cache_dir", "openapi_schema"]


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Close the state (its executor) when the server shuts down."""
    try:
        yield
    finally:
        await asyncio.to_thread(app.state.secquant.close)


def create_app(binding: ModelBinding | None, config: ServiceConfig) -> Any:
    """Build the FastAPI application.

    The executor of ``config.executor``, if any, starts here and is closed when
    the server shuts down (or by ``app.state.secquant.close()`` for an app that
    is never served).

    Args:
        binding: The compiled model; None builds a model-less app whose only use
            is :func:`openapi_schema`.
        config: Access control and limits.

    Returns:
        A ``fastapi.FastAPI`` instance.

    Raises:
        ConfigError: an unknown executor URL (and see ``ServiceState.build``).
        ExecutorError: the executor's Ray cluster cannot be reached.
    """
    app = FastAPI(title="secquant encrypted-inference service", version=str(PROTOCOL_VERSION),
                  description="Encrypted inference on a quantized model; see protocols/inference-service.md.",
                  lifespan=_lifespan)
    install_error_handlers(app)
    app.state.secquant = ServiceState.build(binding, config)
    app.include_router(router)
    return app


def openapi_schema() -> dict[str, Any]:
    """The service's OpenAPI document (what ``protocols/openapi.json`` holds)."""
    return create_app(None, ServiceConfig(allow_no_auth=True)).openapi()


def default_cache_dir() -> Path:
    """``$SECQUANT_CACHE_DIR`` or ``~/.cache/secquant/keys``."""
    env = os.environ.get("SECQUANT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "secquant" / "keys"
