"""The browser demo: draw a digit, run it encrypted, and see what each side sees.

``secquant demo --web`` (:func:`run_web_demo`) starts, on 127.0.0.1:

* one inference server per (model, scheme) pair, each a real ``secquant serve``
  process that holds the model and never a secret key;
* the **client app** (``python -m secquant.web``, :func:`create_app`), which
  holds the secret keys, serves the page (plain HTML, CSS and JS shipped in
  ``static/``), and runs every input through the public client API
  (``secquant.protocol.Client``), exactly as a script would.

Modules: :mod:`.choices` (models, schemes, server entries), :mod:`.preprocess`
(canvas -> model input, as the training data were made), :mod:`.catalog`
(local models and test images), :mod:`.servers` (which server serves what, and
whether it is up), :mod:`.relay` (forwards and records the bytes sent),
:mod:`.inference` (one run and its report), :mod:`.jobs` (staged progress the
page polls), :mod:`.app` (routes), :mod:`.launcher` (processes, signals, cleanup).
FastAPI, uvicorn and httpx load only when these modules do.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "ClientAppConfig": "secquant.web.app",
    "create_app": "secquant.web.app",
    "DemoModel": "secquant.web.choices",
    "DemoScheme": "secquant.web.choices",
    "ServerEntry": "secquant.web.choices",
    "WebDemoConfig": "secquant.web.launcher",
    "run_web_demo": "secquant.web.launcher",
    "canvas_to_image": "secquant.web.preprocess",
}

__all__ = ["ClientAppConfig", "DemoModel", "DemoScheme", "ServerEntry", "WebDemoConfig", "canvas_to_image",
           "create_app", "run_web_demo"]

__getattr__ = lazy_getattr(__name__, _LAZY)
