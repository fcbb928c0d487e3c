"""Protocols over a real network: encrypted inference and secure aggregation.

Shared pieces, at this level:

* :mod:`.messages`: typed, versioned, digest-checked binary frames;
* :mod:`.errors`: protocol errors and the HTTP status of each;
* :mod:`.http`: server side (bearer tokens in constant time, size-limited bodies,
  one JSON error body); :mod:`.transport`: client side (httpx client, ``raise_for_status``);
* :mod:`.runner`: uvicorn, blocking or in a background thread;
* :mod:`.openapi`: ``python -m secquant.protocol.openapi [--write]``.

The two protocols:

* :mod:`.inference`: the encrypted-inference service (:func:`create_app`,
  ``secquant serve``) and its :class:`Client` / :func:`infer_remote`;
* :mod:`.aggregation`: Paillier secure aggregation with distributed discrete
  Gaussian noise (``secquant aggregate``).

Specs: ``protocols/inference-service.md`` and ``protocols/secure-aggregation.md``.
FastAPI, uvicorn and httpx are imported only when the modules using them load.
"""

from __future__ import annotations

import importlib
from typing import Any

from secquant._lazy import lazy_getattr

_LAZY = {
    "Client": "secquant.protocol.inference.client",
    "RemoteInference": "secquant.protocol.inference.client",
    "infer_remote": "secquant.protocol.inference.client",
    "ServiceConfig": "secquant.protocol.inference.config",
    "create_app": "secquant.protocol.inference.app",
    "openapi_schema": "secquant.protocol.inference.app",
    "ModelBinding": "secquant.protocol.inference.binding",
    "SecurityFloor": "secquant.protocol.inference.floors",
    "TokenTable": "secquant.protocol.inference.tokens",
    "ServerThread": "secquant.protocol.runner",
    "serve": "secquant.protocol.runner",
}

#: Subpackages reachable as attributes (``secquant.protocol.aggregation.KeyHolder``), imported on first access.
SUBPACKAGES = ("aggregation", "inference")

__all__ = sorted(_LAZY)

_names = lazy_getattr(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    """Import a lazily exported name or a subpackage on first access (PEP 562).

    Raises:
        AttributeError: neither.
    """
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    return _names(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *SUBPACKAGES})
