"""``secquant serve`` / ``secquant infer --server`` as processes, and the examples (aggregation: test_aggregation_cli.py).

Each server is a child process on a free port of 127.0.0.1, polled with a
bounded loop and terminated by the test.  Oracles: the local integer model's
predictions, and the examples' own checks.  Deterministic.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"server exited early: {err[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy in {seconds} s")


def _spawn(args: list[str], token: str) -> subprocess.Popen:
    env = dict(os.environ, SECQUANT_TOKEN=token)
    return subprocess.Popen([sys.executable, "-m", "secquant", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_serve_and_infer_commands(digits_mlp_qm, tmp_path: Path) -> None:
    model = tmp_path / "model.npz"
    digits_mlp_qm.save(model)
    token, port = secrets.token_urlsafe(24), _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _spawn(["serve", str(model), "--scheme", "plain", "--port", str(port),
                   "--cache-dir", str(tmp_path / "keys")], token)
    try:
        _wait_healthy(url, proc)
        assert httpx.get(f"{url}/v1/info").status_code == 401  # token required
        env = dict(os.environ, SECQUANT_TOKEN=token)
        # no --scheme: the flag's default (bfv) must not be reported, the server's scheme must
        out = subprocess.run([sys.executable, "-m", "secquant", "infer", str(model), "--data", "digits", "--limit",
                              "20", "--server", url, "--json"],
                             capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert out.returncode == 2 and "no encryption" in out.stderr  # the client's floor refuses plain
        out = subprocess.run([sys.executable, "-m", "secquant", "infer", str(model), "--data", "digits", "--limit",
                              "20", "--server", url, "--json", "--allow-insecure"],
                             capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        info = json.loads(out.stdout)
        assert info["scheme"] == "plain"
        from secquant.data import load_dataset

        x = load_dataset("digits").x_test[:20]
        assert info["predictions"] == [int(v) for v in digits_mlp_qm.predict(x).argmax(axis=1)]
    finally:
        _stop(proc)


def _run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["plain", "bfv"])
def test_serve_and_infer_example(scheme: str) -> None:
    out = _run_example("serve_and_infer.py", "--scheme", scheme, "--n", "4", "--epochs", "20")
    assert "remote equals local em.predict: True" in out
    assert "carries no weight: True" in out


def test_signed_serve_and_infer_with_trust_and_pin(digits_linear_qm, tmp_path: Path) -> None:
    """``serve --sign-key`` + ``infer --trust PUB``; a wrong ``--spec-digest`` or a foreign key is refused."""
    from secquant.signing import generate_signing_keys

    private, public = generate_signing_keys(tmp_path / "op", "op")
    _, foreign = generate_signing_keys(tmp_path / "other", "other")
    model = tmp_path / "model.npz"
    digits_linear_qm.save(model)
    token, port = secrets.token_urlsafe(24), _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _spawn(["serve", str(model), "--scheme", "paillier", "--port", str(port), "--sign-key", str(private),
                   "--cache-dir", str(tmp_path / "keys")], token)
    try:
        _wait_healthy(url, proc)
        token_file = tmp_path / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if k != "SECQUANT_TOKEN"}
        base = [sys.executable, "-m", "secquant", "infer", str(model), "--data", "digits", "--limit", "4",
                "--server", url, "--token-file", str(token_file), "--json"]

        def infer(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run([*base, *extra], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)

        out = infer("--trust", str(public))
        assert out.returncode == 0, out.stderr[-2000:]
        from secquant.data import load_dataset

        x = load_dataset("digits").x_test[:4]
        assert json.loads(out.stdout)["predictions"] == [int(v) for v in digits_linear_qm.predict(x).argmax(axis=1)]
        out = infer("--trust", str(foreign))
        assert out.returncode == 2 and "unknown key" in out.stderr
        out = infer("--spec-digest", "0" * 64)
        assert out.returncode == 2 and "not the pinned" in out.stderr
    finally:
        _stop(proc)
    err = proc.stderr.read().decode() if proc.stderr else ""
    digest = err.split("service spec digest ")[1].split()[0]
    assert len(digest) == 64  # printed at start, for clients that pin it


@pytest.mark.parametrize(("args", "expected"), [
    (["--budget", "16"], "429 QueryBudgetError"),
    (["--budget", "1000", "--epsilon", "3"], "403 PrivacyBudgetError"),
])
def test_protected_service_example(args: list[str], expected: str) -> None:
    out = _run_example("protected_service.py", "--epochs", "30", *args)
    assert "authenticated by signature" in out and expected in out and "budget enforced: True" in out
