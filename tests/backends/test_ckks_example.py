"""examples/ckks_inference.py runs end to end at a small size (its exit status checks the error bound)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tenseal")

ROOT = Path(__file__).resolve().parents[2]


def test_ckks_example_runs_small():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "ckks_inference.py"), "--limit", "4",
                           "--epochs", "10"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stated bound" in proc.stdout and ": True" in proc.stdout
