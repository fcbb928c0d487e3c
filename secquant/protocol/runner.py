"""Run an ASGI app under uvicorn: blocking (the CLI) or in a background thread (tests, bench, examples).

TLS is uvicorn's: pass ``certfile`` and ``keyfile`` (PEM).  Without them the
server speaks plain HTTP, which is only sensible on 127.0.0.1 or behind a
TLS-terminating proxy; :func:`serve` logs a warning for any other host.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from secquant.errors import ConfigError

__all__ = ["ServerThread", "serve"]

log = logging.getLogger("secquant.protocol")


def _uvicorn_config(app: Any, host: str, port: int, certfile: str | None, keyfile: str | None,
                    log_level: str) -> Any:
    import uvicorn

    if (certfile is None) != (keyfile is None):
        raise ConfigError("TLS needs both certfile and keyfile (PEM), or neither")
    if certfile is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving plain HTTP on %s: ciphertexts and the bearer token travel unprotected; use TLS", host)
    return uvicorn.Config(app, host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile,
                          log_level=log_level, access_log=False, timeout_graceful_shutdown=5)


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, *, certfile: str | None = None,
          keyfile: str | None = None, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted (blocking).

    Raises:
        ConfigError: only one of certfile and keyfile was given.
    """
    import uvicorn

    uvicorn.Server(_uvicorn_config(app, host, port, certfile, keyfile, log_level)).run()


class ServerThread:
    """Serve an app on ``127.0.0.1`` at a free port in a daemon thread.

    Use as a context manager; ``url`` is set once the server accepts
    connections, and leaving the block stops it.

    Args:
        app: The ASGI application.
        certfile: PEM certificate for TLS (with ``keyfile``), or None.
        keyfile: PEM private key for TLS, or None.
        startup_timeout: Seconds to wait for the server to start.
    """

    def __init__(self, app: Any, *, certfile: str | None = None, keyfile: str | None = None,
                 startup_timeout: float = 30.0) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"{'https' if certfile else 'http'}://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(_uvicorn_config(app, "127.0.0.1", self.port, certfile, keyfile, "warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._timeout = startup_timeout

    def start(self) -> ServerThread:
        """Start serving and wait until the server accepts connections.

        Raises:
            RuntimeError: the server did not start within the timeout.
        """
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for the thread (at most 10 s)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
