"""Protocols over a real network.

* The encrypted-inference service: :func:`~secquant.protocol.server.create_app`
  (FastAPI, served by uvicorn; ``secquant serve``) and
  :class:`~secquant.protocol.client.Client` / :func:`~secquant.protocol.client.infer_remote`.
* Paillier secure aggregation with distributed discrete Gaussian noise:
  :mod:`secquant.protocol.aggregation` (``secquant aggregate``).

Specs: ``protocols/inference-service.md`` and ``protocols/secure-aggregation.md``.
FastAPI, uvicorn and httpx are imported only when these modules load.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "Client": "secquant.protocol.client",
    "RemoteInference": "secquant.protocol.client",
    "infer_remote": "secquant.protocol.client",
    "ServiceConfig": "secquant.protocol.server",
    "create_app": "secquant.protocol.server",
    "openapi_schema": "secquant.protocol.server",
    "ModelBinding": "secquant.protocol.binding",
    "ServerThread": "secquant.protocol.runner",
    "serve": "secquant.protocol.runner",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
