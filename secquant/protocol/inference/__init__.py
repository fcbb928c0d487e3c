"""The encrypted-inference service and its client.

* :mod:`.app`: :func:`create_app` assembles the FastAPI app (``secquant serve``);
  :mod:`.routes` holds the endpoint handlers, :mod:`.state` what the server keeps,
  :mod:`.config` its limits (:class:`ServiceConfig`);
* :mod:`.client`: :class:`Client` and :func:`infer_remote` (``secquant infer --server``);
  :mod:`.floors` the client's own security floor, :mod:`.manifest` the signed service spec;
* :mod:`.binding`: :class:`ModelBinding`, the model and digests both sides check;
* :mod:`.sessions`: the session store (public material on disk, roles in memory, one owner each);
* :mod:`.tokens`, :mod:`.quotas`: hashed tokens with scopes and limits, per-token usage;
* :mod:`.release`: release policies applied by the server; :mod:`.limits`: what a request carries.

Spec: ``protocols/inference-service.md``.  FastAPI and httpx load with the modules that use them.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "Client": "secquant.protocol.inference.client",
    "RemoteInference": "secquant.protocol.inference.client",
    "infer_remote": "secquant.protocol.inference.client",
    "ServiceConfig": "secquant.protocol.inference.config",
    "ServiceInfo": "secquant.protocol.inference.state",
    "SessionInfo": "secquant.protocol.inference.state",
    "create_app": "secquant.protocol.inference.app",
    "default_cache_dir": "secquant.protocol.inference.app",
    "openapi_schema": "secquant.protocol.inference.app",
    "ModelBinding": "secquant.protocol.inference.binding",
    "SessionStore": "secquant.protocol.inference.sessions",
    "SecurityFloor": "secquant.protocol.inference.floors",
    "ServiceSpec": "secquant.protocol.inference.manifest",
    "ServiceRelease": "secquant.protocol.inference.release",
    "parse_release": "secquant.protocol.inference.release",
    "Scope": "secquant.protocol.inference.tokens",
    "TokenRecord": "secquant.protocol.inference.tokens",
    "TokenTable": "secquant.protocol.inference.tokens",
    "new_token": "secquant.protocol.inference.tokens",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
