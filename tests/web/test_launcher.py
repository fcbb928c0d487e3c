"""``secquant demo --web`` as a user runs it: real processes, signals, and what is left on disk.

Oracles: /proc (which children live), the file system (the run directory and its
key files), the client app's own API, and the exit code.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import child_pids, wait_gone


def _run_one(url: str) -> dict[str, Any]:
    job_id = httpx.post(f"{url}api/run", json={"model": "digits", "scheme": "bfv",
                                                "input": {"kind": "test", "index": 5}}).json()["job"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    pytest.fail("the job did not finish")


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "keep"), [(signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm-keep-keys"])
def test_stop_ends_both_processes_and_removes_keys(demo_factory: Any, sig: int, keep: bool) -> None:
    demo = demo_factory("--data", "digits", "--scheme", "bfv", *(["--keep-keys"] if keep else []))
    children = child_pids(demo.proc.pid)
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children}
    assert len(children) == 2, demo.output()
    assert sum(b"serve" in cmd for cmd in commands.values()) == 1
    assert sum(b"secquant.web" in cmd for cmd in commands.values()) == 1
    assert all(b"SECQUANT_TOKEN" not in b" ".join(cmd) for cmd in commands.values())  # never on a command line
    job = _run_one(demo.url)  # makes and uploads keys: the server caches them in the run directory
    assert job["state"] == "done" and job["result"]["client"]["agreement"]["ok"], job
    key_files = [p for p in (demo.run_dir / "keys").iterdir() if p.is_file()]
    assert key_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in key_files)
    assert stat.S_IMODE((demo.run_dir / "keys").stat().st_mode) == 0o700
    assert demo.stop(sig) == 0, demo.output()
    assert wait_gone(children) == [], f"children still running after {signal.Signals(sig).name}"
    if keep:
        assert [p.name for p in (demo.run_dir / "keys").iterdir()] and "kept the key files" in demo.output()
        shutil.rmtree(demo.run_dir)
    else:
        assert not demo.run_dir.exists() and f"removed {demo.run_dir}" in demo.output()


def test_port_in_use_is_refused_and_nothing_is_left() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "secquant", "demo", "--web", "--port", str(port)],
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in proc.stderr, proc.stderr
    run_dir = proc.stdout.split("run directory ", 1)[1].split(" ", 1)[0]
    assert not os.path.exists(run_dir)


@pytest.mark.parametrize("args", [["--keep-keys"], ["--server", "http://127.0.0.1:1"], ["--port", "9"],
                                  ["--web", "--scheme", "plain"], ["--web", "--server", "ftp://x"]])
def test_web_flags_are_checked(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "secquant", "demo", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and "secquant: error:" in proc.stderr, proc.stderr
