"""What the inference service holds: the bound model, its sessions, and its JSON answers.

:class:`ServiceState` is built once per app (:func:`~secquant.protocol.inference.app.create_app`)
and read by every route (:mod:`secquant.protocol.inference.routes`) from
``app.state.secquant``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from secquant.errors import ConfigError, SecquantError
from secquant.protocol.errors import CiphertextError
from secquant.protocol.http import check_token
from secquant.protocol.inference.binding import ModelBinding, artifact_digest
from secquant.protocol.inference.config import ServiceConfig
from secquant.protocol.inference.sessions import SessionStore
from secquant.protocol.messages import PROTOCOL_VERSION

__all__ = ["Health", "ServiceInfo", "ServiceState", "SessionInfo"]

log = logging.getLogger("secquant.protocol")


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
    return json.loads(json.dumps(value, default=str))


@dataclass
class ServiceState:
    """The service's model, session store, published answers and evaluation gate.

    Attributes:
        binding: The compiled model, or None for a schema-only app.
        config: Access control and limits.
        store: Sessions (None without a model).
        gate: Bounds concurrent evaluations; made on first use inside the event loop.
        info: The ``GET /v1/info`` answer.
        client_spec: The ``GET /v1/client-spec`` bytes.
    """

    binding: ModelBinding | None
    config: ServiceConfig
    store: SessionStore | None = None
    gate: asyncio.Semaphore | None = None
    info: dict[str, Any] = field(default_factory=dict)
    client_spec: bytes = b""

    @classmethod
    def build(cls, binding: ModelBinding | None, config: ServiceConfig) -> ServiceState:
        """Open the session store and compute the published answers (nothing but config without a model)."""
        state = cls(binding=binding, config=config)
        if binding is None:
            return state
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
        return state

    def ready(self, authorization: str | None) -> tuple[ModelBinding, SessionStore]:
        """Check the bearer token and return the model and the session store.

        Raises:
            AuthenticationError: missing or wrong token.
            ConfigError: the app was built without a model.
        """
        check_token(authorization, self.config.token)
        if self.binding is None or self.store is None:
            raise ConfigError("this app was built without a model (schema export only)")
        return self.binding, self.store

    def evaluation_gate(self) -> asyncio.Semaphore:
        """The semaphore bounding concurrent evaluations (made in the running loop on first use)."""
        if self.gate is None:
            self.gate = asyncio.Semaphore(self.config.max_concurrent_evaluations)
        return self.gate
