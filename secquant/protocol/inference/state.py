"""What the inference service holds: the bound model, its sessions, tokens, quotas and published answers.

:class:`ServiceState` is built once per app (:func:`~secquant.protocol.inference.app.create_app`)
and read by every route (:mod:`secquant.protocol.inference.routes`) from
``app.state.secquant``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from secquant.errors import ConfigError, SecquantError
from secquant.protocol.errors import CiphertextError, ServerBusyError
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.config import ServiceConfig
from secquant.protocol.inference.limits import BodyLimits, body_limits
from secquant.protocol.inference.manifest import ServiceSpec
from secquant.protocol.inference.offload import Offload
from secquant.protocol.inference.quotas import QuotaBook
from secquant.protocol.inference.sessions import SessionStore, private_dir
from secquant.protocol.inference.tokens import Scope, TokenRecord
from secquant.protocol.messages import PROTOCOL_VERSION, sha256_hex

__all__ = ["Health", "ServiceInfo", "ServiceState", "SessionInfo"]

log = logging.getLogger("secquant.protocol")

#: The identity of every request on a server without authentication.
ANONYMOUS = TokenRecord("anonymous", frozenset(Scope), "0" * 64)


class ServiceInfo(BaseModel):
    """Answer of ``GET /v1/info``: what a client needs to compile matching parameters.

    ``service_spec`` is the part a client authenticates (signature or pinned
    digest); every other field is advisory.
    """

    protocol_version: int
    scheme: str
    model_digest: str
    fingerprint: str
    options: dict[str, Any]
    input_shape: list[int]
    output_shape: list[int]
    parameters: dict[str, Any]
    max_request_bytes: int
    max_material_bytes: int
    max_batch: int
    max_sessions_per_token: int
    session_ttl: float
    publish_model: bool
    client_spec_digest: str
    release: dict[str, Any]
    service_spec: dict[str, Any]
    service_spec_digest: str
    service_spec_signature: dict[str, str] | None = None


class SessionInfo(BaseModel):
    """Answer of ``POST /v1/sessions``."""

    session_id: str
    expires_in: float
    fingerprint: str


class Health(BaseModel):
    """Answer of ``GET /v1/health``."""

    status: str


class TokenUsage(BaseModel):
    """One token in ``GET /v1/admin/tokens``: its record (no hash), live sessions and usage."""

    id: str
    record: dict[str, Any]
    sessions: int
    usage: dict[str, Any]


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
    """The service's model, session store, tokens, quotas, published answers and gates.

    Attributes:
        binding: The compiled model, or None for a schema-only app.
        config: Access control and limits.
        store: Sessions (None without a model).
        quotas: Per-token rate limits, query budgets and privacy accounting.
        limits: Body limits in force.
        spec: The service spec clients authenticate.
        gate: Bounds concurrent evaluations; made on first use inside the event loop.
        admission: Bounds requests whose body is being read or evaluated (taken before reading).
        info: The ``GET /v1/info`` answer.
        client_spec: The ``GET /v1/client-spec`` bytes.
        offload: The executor THROUGHPUT-mode BFV/CKKS requests run on (None: in process).
    """

    binding: ModelBinding | None
    config: ServiceConfig
    store: SessionStore | None = None
    quotas: QuotaBook | None = None
    limits: BodyLimits = field(default_factory=lambda: BodyLimits(1024, 1024))
    spec: ServiceSpec | None = None
    gate: asyncio.Semaphore | None = None
    admission_gate: asyncio.Semaphore | None = None
    info: dict[str, Any] = field(default_factory=dict)
    client_spec: bytes = b""
    offload: Offload | None = None

    @classmethod
    def build(cls, binding: ModelBinding | None, config: ServiceConfig) -> ServiceState:
        """Open the session store, compute the published answers and start the executor, if any
        (nothing but config without a model).

        Raises:
            CacheDirError: ``config.cache_dir`` exists and is not private.
            KeyMaterialError, ConfigError: an unreadable signing key.
            ConfigError: an unknown executor URL, or options that cannot travel to its workers.
            ExecutorError: the executor's Ray cluster cannot be reached.
        """
        state = cls(binding=binding, config=config)
        if binding is None:
            return state
        cache = private_dir(config.cache_dir) if config.cache_dir else Path(tempfile.mkdtemp(prefix="secquant-keys-"))
        state.store = SessionStore(cache, binding.fingerprint, _build_role(binding), ttl=config.session_ttl,
                                   max_sessions=config.max_sessions, max_live_roles=config.max_live_roles,
                                   max_per_owner=config.max_sessions_per_token)
        state.quotas = QuotaBook(cache / "usage.json", binding.release.rho_per_input)
        state.limits = state._limits(binding, config)
        state.client_spec = binding.em.backend.client_spec()
        state.info = state._info(binding, config)
        if config.tokens is None:
            log.warning("SECQUANT SERVICE RUNS WITHOUT AUTHENTICATION: anyone who reaches it can use it")
        state.offload = Offload.start(config.executor, binding, config.max_live_roles)  # last: nothing else fails
        return state

    def close(self) -> None:
        """Release what outlives requests: the executor (its workers, and a Ray cluster it started).  Idempotent."""
        if self.offload is not None:
            self.offload.close()

    @staticmethod
    def _limits(binding: ModelBinding, config: ServiceConfig) -> BodyLimits:
        """The operator's limits, or the ones derived from the model (which may lower ``max_batch``)."""
        if config.max_request_bytes is not None:
            material = config.max_material_bytes or config.max_request_bytes
            return BodyLimits(config.max_request_bytes, material, config.max_batch)
        derived = body_limits(binding, config.max_batch)
        return BodyLimits(derived.evaluate, config.max_material_bytes or derived.material, derived.max_batch)

    def _info(self, binding: ModelBinding, config: ServiceConfig) -> dict[str, Any]:
        from secquant.protocol.inference.binding import artifact_digest

        release = _json_safe(binding.release.describe())
        self.spec = ServiceSpec(binding.scheme, binding.model_digest, binding.fingerprint,
                                sha256_hex(self.client_spec), release)
        signature = self.spec.sign(config.sign_key) if config.sign_key is not None else None
        return ServiceInfo(
            protocol_version=PROTOCOL_VERSION, scheme=binding.scheme, model_digest=binding.model_digest,
            fingerprint=binding.fingerprint, options=binding.options, input_shape=list(binding.qm.input_shape),
            output_shape=list(binding.qm.output_shape), parameters=_json_safe(binding.em.parameters()),
            max_request_bytes=self.limits.evaluate, max_material_bytes=self.limits.material,
            max_batch=self.limits.max_batch, max_sessions_per_token=config.max_sessions_per_token,
            session_ttl=config.session_ttl, publish_model=config.publish_model,
            client_spec_digest=artifact_digest(self.client_spec), release=release,
            service_spec=self.spec.to_json(), service_spec_digest=self.spec.digest,
            service_spec_signature=signature,
        ).model_dump()

    def authorize(self, authorization: str | None, scope: Scope = Scope.INFER) -> TokenRecord:
        """The caller's token record, if it holds ``scope`` and is within its rate.

        Raises:
            AuthenticationError: missing or wrong token.
            ScopeError: the token lacks ``scope``.
            RateLimitError: the token exceeds its rate (429, ``Retry-After``).
        """
        tokens = self.config.tokens
        record = ANONYMOUS if tokens is None else tokens.authenticate(authorization)
        record.require(scope)
        if self.quotas is not None:
            self.quotas.admit(record)
        return record

    def ready(self, authorization: str | None, scope: Scope = Scope.INFER) -> tuple[ModelBinding, SessionStore,
                                                                                    TokenRecord]:
        """Check the token and return the model, the session store and the token's record.

        Raises:
            AuthenticationError, ScopeError, RateLimitError: see :meth:`authorize`.
            ConfigError: the app was built without a model.
        """
        record = self.authorize(authorization, scope)
        if self.binding is None or self.store is None:
            raise ConfigError("this app was built without a model (schema export only)")
        return self.binding, self.store, record

    def session_cap(self, record: TokenRecord) -> int:
        """Live sessions ``record`` may hold."""
        return record.max_sessions or self.config.max_sessions_per_token

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Hold one of ``max_concurrent_requests`` slots: taken before a body is read, released after.

        Raises:
            ServerBusyError: no slot freed within ``admission_timeout`` (503, ``Retry-After``).
        """
        if self.admission_gate is None:
            self.admission_gate = asyncio.Semaphore(self.config.max_concurrent_requests)
        try:
            await asyncio.wait_for(self.admission_gate.acquire(), self.config.admission_timeout)
        except asyncio.TimeoutError:
            raise ServerBusyError(f"every one of the {self.config.max_concurrent_requests} request slots stayed busy "
                                  f"for {self.config.admission_timeout:g} s; retry later", 1.0) from None
        try:
            yield
        finally:
            self.admission_gate.release()

    def evaluation_gate(self) -> asyncio.Semaphore:
        """The semaphore bounding concurrent evaluations (made in the running loop on first use)."""
        if self.gate is None:
            self.gate = asyncio.Semaphore(self.config.max_concurrent_evaluations)
        return self.gate
