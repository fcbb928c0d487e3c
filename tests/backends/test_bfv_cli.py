"""The BFV example and the ``secquant infer`` command, run as a user would (small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tenseal")

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          check=False)


@pytest.mark.slow
def test_encrypted_inference_example_small() -> None:
    proc = _run(str(ROOT / "examples" / "encrypted_inference.py"), "--limit", "20", "--latency", "1",
                "--epochs", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bit-exact vs qm.forward_int: True" in proc.stdout
    assert "plain_modulus=257 refused" in proc.stdout


def test_infer_command_bit_exact(tmp_path, digits_mlp) -> None:
    model = tmp_path / "digits.sqm"
    digits_mlp.qm.save(model)
    proc = _run("-m", "secquant", "infer", str(model), "--data", "digits", "--limit", "12", "--scheme", "bfv",
                "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout)
    assert info["bit_exact"] is True and len(info["predictions"]) == 12
    assert {"encrypt", "evaluate", "decrypt"} <= set(info["timings_s"])


def test_infer_command_remote_without_server_is_a_clean_error(tmp_path, digits_mlp) -> None:
    model = tmp_path / "digits.sqm"
    digits_mlp.qm.save(model)
    proc = _run("-m", "secquant", "infer", str(model), "--data", "digits", "--limit", "2",
                "--server", "http://127.0.0.1:9", "--token", "t", timeout=120)
    assert proc.returncode == 2
    assert "secquant: error:" in proc.stderr and "Traceback" not in proc.stderr
