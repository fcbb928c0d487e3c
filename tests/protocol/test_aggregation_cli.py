"""``secquant aggregate`` as a process, and ``examples/secure_aggregation.py``.

The aggregator is a child process on a free port of 127.0.0.1, polled with a
bounded loop and terminated by the test.  Oracles: the release equals the
parties' revealed updates plus noise to the bit, the documented refusals (a
token file others can read, a round not signed by the pinned key-holder), and
the example's own printed checks.  Deterministic.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from secquant.signing import write_secret_file

from .aggregation_rig import TEST_POLICY, Rig

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "secquant", *args], env={**os.environ, **(env or {})}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"aggregator exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy in {seconds} s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_aggregate_command_round(tmp_path: Path) -> None:
    from secquant.protocol.aggregation import RoundConfig
    from secquant.protocol.errors import RemoteError

    rig = Rig.make(["c0", "c1"])
    from cryptography.hazmat.primitives import serialization

    pub = tmp_path / "keyholder.pub"
    pub.write_bytes(rig.kh_pub.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    token_file = write_secret_file(tmp_path / "token", rig.token.encode() + b"\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _spawn(["aggregate", "--port", str(port), "--keyholder-key", str(pub), "--token-file", str(token_file)])
    try:
        _wait_healthy(url, proc)
        assert httpx.get(f"{url}/v1/rounds/x").status_code == 401  # the token gate is on
        cfg = RoundConfig(n_clients=2, dim=5, sigma=5.0, key_bits=rig.key_holder.key_bits)
        impostor = Rig.make(["c0", "c1"])  # another key-holder key: not pinned by this aggregator
        impostor.token = rig.token
        with pytest.raises(RemoteError) as info:
            impostor.key_holder.open_round(url, rig.token, cfg)
        assert info.value.status == 401
        rid = rig.key_holder.open_round(url, rig.token, cfg)
        clients = [rig.client(url, pid, policy=TEST_POLICY) for pid in ("c0", "c1")]
        for c in clients:
            c.submit(rid, np.full(5, 0.1))
        release = rig.key_holder.release(url, rig.token, rid)
        expected = sum(c.revealed["update"] + c.revealed["noise"] for c in clients)
        np.testing.assert_array_equal(release.residues, np.mod(expected, cfg.modulus))
    finally:
        _stop(proc)


def test_aggregate_command_refuses_a_readable_token_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    rig = Rig.make(["c0"])
    pub = tmp_path / "keyholder.pub"
    pub.write_bytes(rig.kh_pub.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    token_file = tmp_path / "token"
    token_file.write_text(secrets.token_urlsafe(24))
    token_file.chmod(0o644)
    out = subprocess.run([sys.executable, "-m", "secquant", "aggregate", "--port", str(_free_port()),
                          "--keyholder-key", str(pub), "--token-file", str(token_file)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0 and "chmod 600" in out.stderr
    out = subprocess.run([sys.executable, "-m", "secquant", "aggregate", "--port", str(_free_port())],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0 and "--keyholder-key" in out.stderr


def _run_example(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "secure_aggregation.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_secure_aggregation_example() -> None:
    out = _run_example("--clients", "3", "--dim", "20", "--key-bits", "2048", "--dropouts", "1")
    assert "survivors added 1 extra noise shares" in out and "with 3 noise shares" in out
    assert "a second submission by client-000 is refused: 409" in out
    out = _run_example("--clients", "3", "--dim", "20", "--key-bits", "2048", "--dropouts", "1", "--policy", "refuse")
    assert "key-holder refused to release" in out
