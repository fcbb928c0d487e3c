"""Shared fixtures: the demo's models trained once (small), and ``secquant demo --web`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from secquant.web.servers import process_alive

#: Training epochs of the test models: small, the oracle is the model itself, not its accuracy.
EPOCHS = 2


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test models are cached (``secquant demo --web --models DIR`` reuses them)."""
    return tmp_path_factory.mktemp("demo-models")


@pytest.fixture(scope="session")
def digits_model(models_dir: Path) -> dict[str, Any]:
    """The digits MLP's manifest entry (trained in about a second)."""
    from secquant.demo import prepare_models

    return prepare_models(("digits",), models_dir, epochs=EPOCHS, echo=lambda _: None)["digits"]


@pytest.fixture(scope="session")
def demo_models(models_dir: Path, digits_model: dict[str, Any]) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Both demo models, trained and quantized once, in the models directory the launcher reuses."""
    from secquant.demo import prepare_models

    return models_dir, prepare_models(("mnist", "digits"), models_dir, epochs=EPOCHS, echo=lambda _: None)


def child_pids(pid: int) -> list[int]:
    """Live children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait until none of ``pids`` runs; returns those still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if process_alive(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [p for p in pids if process_alive(p)]


@dataclass
class DemoProcess:
    """A running ``secquant demo --web``: its process, output lines, URL and run directory."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    run_dir: Path | None = None

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first output line containing ``text``; fails if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the reader drain
                if any(text in line for line in self.lines):
                    continue
                pytest.fail(f"secquant demo exited ({self.proc.returncode}) before {text!r}:\n{self.output()}")
            time.sleep(0.1)
        pytest.fail(f"no {text!r} within {timeout:.0f} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 40.0) -> int:
        """Send ``sig`` to the demo and wait for it; kills it (and its children) if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in child_pids(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"secquant demo ignored {signal.Signals(sig).name} for {timeout:.0f} s:\n{self.output()}")


def launch_demo(models_dir: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 240.0) -> DemoProcess:
    """Start ``secquant demo --web --port 0`` with the cached models and wait for its URL."""
    cmd = [sys.executable, "-m", "secquant", "demo", "--web", "--port", "0", "--models", str(models_dir),
           "--epochs", str(EPOCHS), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})))
    demo = DemoProcess(proc)

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            demo.lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        demo.run_dir = Path(demo.wait_for("run directory", 60).split("run directory ", 1)[1].split(" ", 1)[0])
        demo.url = demo.wait_for("secquant demo: open ", timeout).split("open ", 1)[1].split(" ", 1)[0]
    except BaseException:
        demo.stop(signal.SIGTERM)
        raise
    return demo


@pytest.fixture()
def demo_factory(models_dir: Path, digits_model: dict[str, Any]) -> Iterator[Any]:
    """Start demos with ``demo_factory(*args)`` (the models in ``models_dir``; request ``demo_models``
    too for MNIST); each is stopped (SIGTERM) at the end if still running."""
    started: list[DemoProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DemoProcess:
        demo = launch_demo(models_dir, *args, env=env)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop(signal.SIGTERM)
