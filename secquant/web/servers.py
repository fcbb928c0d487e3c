"""Which inference server serves which (model, scheme), and whether it is up.

Servers the demo started are known by their process id: one that does not
answer yet is *starting* while its process lives and has *exited* once it is
gone.  A remote server (``--server URL``) is asked for ``GET /v1/info`` once,
which names its scheme and input shape, hence the demo model it serves.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from secquant.web.choices import DemoModel, DemoScheme, ServerEntry
from secquant.web.errors import DemoInputError, DemoServerError

__all__ = ["ServerPool", "model_for_shape", "process_alive"]

_SHAPES = {(1, 28, 28): DemoModel.MNIST, (28, 28): DemoModel.MNIST, (784,): DemoModel.MNIST,
           (64,): DemoModel.DIGITS, (1, 8, 8): DemoModel.DIGITS, (8, 8): DemoModel.DIGITS}


def model_for_shape(shape: Any) -> DemoModel | None:
    """The demo model whose input has this shape, or None."""
    return _SHAPES.get(tuple(int(v) for v in shape)) if isinstance(shape, (list, tuple)) else None


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _log_tail(path: str | None, lines: int = 6) -> str:
    if not path:
        return ""
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class ServerPool:
    """The inference servers of this run.

    Args:
        servers: Entries; remote ones may lack model and scheme until resolved.
        token: Bearer token of the servers (None: no authentication).
    """

    def __init__(self, servers: list[ServerEntry], token: str | None) -> None:
        self._entries = list(servers)
        self._token = token
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[ServerEntry]:
        """A copy of the entries."""
        with self._lock:
            return list(self._entries)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def health(self, entry: ServerEntry, timeout: float = 2.0) -> str:
        """``ready``, ``starting`` (local, process alive), ``exited`` (local) or ``unreachable`` (remote)."""
        import httpx

        try:
            ok = httpx.get(entry.url.rstrip("/") + "/v1/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            return "ready"
        if entry.local:
            return "starting" if process_alive(int(entry.pid)) else "exited"  # type: ignore[arg-type]
        return "unreachable"

    def resolve(self, index: int) -> ServerEntry:
        """Read a remote server's ``/v1/info`` to learn its scheme and model; cached.

        Raises:
            DemoServerError: unreachable (code ``ServerUnreachable``), token refused, or a model or
                scheme the demo does not have (code ``SpecMismatch``).
        """
        import httpx

        entry = self.entries[index]
        if entry.model is not None and entry.scheme is not None:
            return entry
        try:
            answer = httpx.get(entry.url.rstrip("/") + "/v1/info", headers=self._headers(), timeout=10.0)
        except httpx.HTTPError as exc:
            raise DemoServerError(f"cannot reach the inference server at {entry.url} ({type(exc).__name__}: "
                                  f"{exc}); check the URL and that `secquant serve` runs there",
                                  code="ServerUnreachable") from exc
        if answer.status_code == 401:
            raise DemoServerError(f"the inference server at {entry.url} refused the token: export "
                                  "SECQUANT_TOKEN=<its token> before starting the demo", code="Unauthorized")
        if answer.status_code != 200:
            raise DemoServerError(f"the inference server at {entry.url} answered {answer.status_code} to "
                                  f"GET /v1/info: {answer.text[:300]}", code="ServerError")
        info = answer.json()
        model = model_for_shape(info.get("input_shape"))
        if model is None or info.get("scheme") not in {s.value for s in DemoScheme}:
            raise DemoServerError(
                f"spec mismatch: the server at {entry.url} serves a {info.get('scheme')} model with input shape "
                f"{info.get('input_shape')}, which is none of the demo's models (MNIST 1x28x28, digits 64) "
                "under BFV, CKKS or Paillier", code="SpecMismatch")
        resolved = ServerEntry(url=entry.url, model=model, scheme=DemoScheme(info["scheme"]))
        with self._lock:
            self._entries[index] = resolved
        return resolved

    def find(self, model: DemoModel, scheme: DemoScheme) -> int:
        """Index of the server for (model, scheme), resolving remote servers as needed.

        Raises:
            DemoInputError: no server of this run serves the pair (code ``NotServed``).
            DemoServerError: no server serves the pair and a remote one could not be asked
                (the first such failure).
        """
        for i, entry in enumerate(self.entries):
            if entry.model is model and entry.scheme is scheme:
                return i
        failures: list[DemoServerError] = []
        for i, entry in enumerate(self.entries):
            if entry.model is None or entry.scheme is None:
                try:
                    resolved = self.resolve(i)
                except DemoServerError as exc:  # one dead server must not hide the others
                    failures.append(exc)
                    continue
                if resolved.model is model and resolved.scheme is scheme:
                    return i
        if failures:
            raise failures[0]
        served = ", ".join(f"{e.model.value}/{e.scheme.value}" for e in self.entries if e.model and e.scheme)
        raise DemoInputError(f"no inference server of this run serves the {model.title} under {scheme.title} "
                             f"(served: {served or 'nothing yet'}); choose another pair", code="NotServed")

    def wait_ready(self, index: int, timeout: float, on_wait: Any) -> ServerEntry:
        """Wait until server ``index`` answers; ``on_wait(seconds)`` is called while a local one starts.

        Raises:
            DemoServerError: a local server exited (its log's last lines are quoted), a remote one is
                unreachable, or ``timeout`` seconds passed.
        """
        entry, t0 = self.entries[index], time.monotonic()
        while True:
            state = self.health(entry)
            if state == "ready":
                return entry
            if state == "exited":
                raise DemoServerError(f"the inference server for {entry.model.value}/{entry.scheme.value} "  # type: ignore[union-attr]
                                      f"exited; its log ({entry.log}) ends: {_log_tail(entry.log)}",
                                      code="ServerExited")
            if state == "unreachable":
                raise DemoServerError(f"cannot reach the inference server at {entry.url}: no answer to "
                                      "GET /v1/health; check the URL, the network, and that `secquant serve` "
                                      "runs there", code="ServerUnreachable")
            if time.monotonic() - t0 > timeout:
                raise DemoServerError(f"the inference server at {entry.url} did not start within {timeout:.0f} s; "
                                      f"its log ({entry.log}) ends: {_log_tail(entry.log)}", code="ServerTimeout")
            on_wait(time.monotonic() - t0)
            time.sleep(0.3)

    def status(self) -> list[dict[str, Any]]:
        """Each server's entry and health, for the page."""
        return [dict(e.to_dict(), index=i, state=self.health(e, timeout=1.0), pid=None, log=None)
                for i, e in enumerate(self.entries)]
