"""``secquant demo --web``: start the inference servers and the client app, print the URL, clean up.

Processes, all children of the launcher, all on 127.0.0.1:

* one ``secquant serve`` per (model, scheme) pair (unless ``--server URL``
  names remote servers), sharing a bearer token passed in ``$SECQUANT_TOKEN``
  (never on a command line) and caching public material in the run's ``keys/``;
* the client app, ``python -m secquant.web``, which holds the secret keys.

Everything the run writes (models unless ``--models DIR``, key files, logs,
temporary files) lives in one 0700 run directory.  SIGINT (Ctrl-C) or SIGTERM
stops every child (SIGTERM to its process group, SIGKILL after a grace
period) and removes the run directory, unless ``keep_keys``.  On Linux the
children also get SIGTERM if the launcher itself dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError
from secquant.web.choices import DemoModel, DemoScheme, ServerEntry, write_servers
from secquant.web.errors import DemoServerError

__all__ = ["WebDemoConfig", "run_web_demo"]

_echo = functools.partial(print, flush=True)


@dataclass(frozen=True)
class WebDemoConfig:
    """What ``secquant demo --web`` starts.

    Attributes:
        port: Port of the client app on 127.0.0.1 (0: a free one).
        servers: Remote inference server URLs; empty: start local ``secquant serve`` processes.
        keep_keys: Keep the run directory (key files, models, logs) on exit.
        models_dir: Where model files are cached across runs; None: inside the run directory.
        models: Which demo models to train and serve.
        schemes: Which schemes to serve (local servers only).
        bits: Weight bits of the models (>= 2).
        epochs: Training epochs; None: ``secquant.demo.WEB_EPOCHS`` per model.
        seed: Seed of the data split and training.
        startup_timeout: Seconds to wait for the client app, and a job for a starting server (> 0).
    """

    port: int = 8765
    servers: tuple[str, ...] = ()
    keep_keys: bool = False
    models_dir: str | None = None
    models: tuple[DemoModel, ...] = (DemoModel.MNIST, DemoModel.DIGITS)
    schemes: tuple[DemoScheme, ...] = (DemoScheme.BFV, DemoScheme.CKKS, DemoScheme.PAILLIER)
    bits: int = 8
    epochs: int | None = None
    seed: int = 0
    startup_timeout: float = 180.0

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an int in [0, 65535] (0: a free port), got {self.port!r}")
        for url in self.servers:
            ServerEntry(url)  # validates the URL
        if not self.models or not all(isinstance(m, DemoModel) for m in self.models):
            raise ConfigError("models must be a non-empty tuple of DemoModel")
        if not self.schemes or not all(isinstance(s, DemoScheme) for s in self.schemes):
            raise ConfigError("schemes must be a non-empty tuple of DemoScheme")
        if self.bits < 2 or (self.epochs is not None and self.epochs < 1) or not self.startup_timeout > 0:
            raise ConfigError("bits must be >= 2, epochs >= 1 and startup_timeout > 0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port(port: int) -> int:
    """``port`` if it is free on 127.0.0.1 (a free one for 0).

    Raises:
        ConfigError: the port is taken.
    """
    if port == 0:
        return _free_port()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed demo's TIME_WAIT is fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} on 127.0.0.1 is in use ({exc.strerror}); pass --port 0 for a free "
                              "one, or another port") from exc
    return port


def _death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when the launcher dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG; resolved before fork, only called after


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class _Children:
    """The launcher's child processes, each in its own process group, output to a 0600 log file."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True,
                                    preexec_fn=_death_signal())
        self.procs.append((name, proc, log))
        return proc

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the group: forked workers of a server go too

    def _wait(self, procs: list[subprocess.Popen[bytes]], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM the client app, then the servers; SIGKILL whatever is left after ``grace`` seconds."""
        first = [p for n, p, _ in self.procs if n == "client app"]
        rest = [p for n, p, _ in self.procs if n != "client app"]
        for group in (first, rest):
            for proc in group:
                self._signal(proc, signal.SIGTERM)
            self._wait(group, grace / 2)
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
            self._signal(proc, signal.SIGKILL)  # stragglers of the group


def _trap_signals() -> dict[int, Any]:
    """Turn SIGTERM into KeyboardInterrupt (SIGINT already is one); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    return {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}


def _hold_signals(previous: dict[int, Any], restore: bool) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if restore else signal.SIG_IGN)


def run_web_demo(cfg: WebDemoConfig, echo: Callable[[str], Any] = _echo) -> int:
    """Run the browser demo until SIGINT or SIGTERM.

    Args:
        cfg: What to start.
        echo: Where status lines go (the URL line reads ``secquant demo: open http://...``).

    Returns:
        0 after a requested stop; 1 if the client app died.

    Raises:
        ConfigError: the port is taken, or the configuration is invalid.
        DemoServerError: the client app did not start.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="secquant-demo-"))
    for sub in ("keys", "tmp", "logs"):
        (run_dir / sub).mkdir(mode=0o700)
    echo(f"secquant demo: run directory {run_dir} (key files, logs{'' if cfg.models_dir else ', models'}; "
         f"{'kept' if cfg.keep_keys else 'removed'} on exit)")
    children, previous = _Children(), _trap_signals()
    try:
        return _run(cfg, run_dir, children, echo)
    except KeyboardInterrupt:
        echo("secquant demo: stopping the client app and the inference servers ...")
        return 0
    finally:
        _hold_signals(previous, restore=False)
        children.stop()
        _finish(run_dir, cfg.keep_keys, echo)
        _hold_signals(previous, restore=True)


def _finish(run_dir: Path, keep: bool, echo: Callable[[str], Any]) -> None:
    if keep:
        echo(f"secquant demo: stopped; kept the key files, models and logs in {run_dir} (--keep-keys); "
             "delete it when done")
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    echo(f"secquant demo: stopped; removed {run_dir}" if not run_dir.exists()
         else f"secquant demo: stopped, but could not remove all of {run_dir}; delete it by hand")


def _run(cfg: WebDemoConfig, run_dir: Path, children: _Children, echo: Callable[[str], Any]) -> int:
    from secquant.demo import prepare_models, write_manifest

    port = _check_port(cfg.port)
    models_dir = Path(cfg.models_dir) if cfg.models_dir else run_dir / "models"
    manifest = prepare_models(tuple(m.value for m in cfg.models), models_dir, bits=cfg.bits, epochs=cfg.epochs,
                              seed=cfg.seed, echo=echo)
    write_manifest(run_dir / "models.json", manifest)
    token = os.environ.get("SECQUANT_TOKEN") if cfg.servers else secrets.token_urlsafe(32)
    env = dict(os.environ, TMPDIR=str(run_dir / "tmp"), PYTHONUNBUFFERED="1")
    env.pop("SECQUANT_TOKEN", None)
    if token:
        env["SECQUANT_TOKEN"] = token
    if cfg.servers:
        servers = [ServerEntry(url) for url in cfg.servers]
    else:
        servers = _start_servers(cfg, manifest, run_dir, env, children, echo)
    write_servers(run_dir / "servers.json", servers)
    app_log = run_dir / "logs" / "client-app.log"
    app = children.start("client app", [
        sys.executable, "-m", "secquant.web", "--port", str(port), "--manifest", str(run_dir / "models.json"),
        "--servers", str(run_dir / "servers.json"), "--startup-timeout", str(cfg.startup_timeout)], env, app_log)
    url = f"http://127.0.0.1:{port}/"
    _wait_for_app(app, url, app_log, cfg.startup_timeout)
    echo(f"secquant demo: client app (pid {app.pid}) holds the secret keys; log {app_log}")
    echo(f"secquant demo: open {url} in a browser (Ctrl-C stops the demo)")
    return _supervise(app, app_log, servers, children, echo)


def _start_servers(cfg: WebDemoConfig, manifest: dict[str, dict[str, Any]], run_dir: Path, env: dict[str, str],
                   children: _Children, echo: Callable[[str], Any]) -> list[ServerEntry]:
    servers = []
    for model in cfg.models:
        for scheme in cfg.schemes:
            port, log = _free_port(), run_dir / "logs" / f"serve-{model.value}-{scheme.value}.log"
            options = [arg for opt in scheme.serve_options for arg in ("--option", opt)]
            proc = children.start(f"{model.value}/{scheme.value}", [
                sys.executable, "-m", "secquant", "serve", manifest[model.value]["path"], "--scheme", scheme.value,
                *options, "--host", "127.0.0.1", "--port", str(port), "--cache-dir", str(run_dir / "keys")], env, log)
            servers.append(ServerEntry(f"http://127.0.0.1:{port}", model, scheme, proc.pid, str(log)))
            echo(f"secquant demo: inference server {model.value}/{scheme.value} (pid {proc.pid}) starting on "
                 f"http://127.0.0.1:{port}")
    return servers


def _wait_for_app(app: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "api/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if app.poll() is not None:
            raise DemoServerError(f"the client app exited with code {app.returncode}; its log ends:\n{_tail(log)}",
                                  code="ClientAppExited")
        if time.monotonic() > deadline:
            raise DemoServerError(f"the client app did not answer within {timeout:.0f} s; its log ends:\n{_tail(log)}",
                                  code="ClientAppTimeout")
        time.sleep(0.3)


def _supervise(app: subprocess.Popen[bytes], app_log: Path, servers: list[ServerEntry], children: _Children,
               echo: Callable[[str], Any]) -> int:
    """Report servers as they come up or die; return 1 if the client app dies."""
    from secquant.web.servers import ServerPool

    pool, pending = ServerPool(servers, None), dict(enumerate(servers))
    while True:
        for _, proc, _ in children.procs:
            proc.poll()  # reap exited children, so that they read as gone
        if app.poll() is not None:
            echo(f"secquant demo: the client app exited with code {app.returncode}; its log ends:\n{_tail(app_log)}")
            return 1
        for i, entry in list(pending.items()):
            state = pool.health(entry, timeout=0.5)
            name = f"{entry.model.value}/{entry.scheme.value}" if entry.model and entry.scheme else entry.url
            if state == "ready":
                echo(f"secquant demo: inference server {name} ready")
            elif state == "exited":
                echo(f"secquant demo: inference server {name} exited; its log ends:\n{_tail(Path(str(entry.log)))}")
            if state in ("ready", "exited") or not entry.local:
                del pending[i]
        time.sleep(0.5)
