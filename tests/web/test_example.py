"""examples/web_demo.py runs small, as a new user would run it (the oracle: its own checks and exit code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import EPOCHS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web_demo.py"


@pytest.mark.slow
def test_web_demo_example_runs_small(models_dir: Path, digits_model: dict[str, Any]) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--data", "digits", "--scheme", "bfv", "--runs", "2",
                           "--epochs", str(EPOCHS), "--models", str(models_dir)],
                          capture_output=True, text=True, timeout=600, cwd=EXAMPLE.parents[1], check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("bit-exact vs qm.forward_int") == 2
    assert "run directory removed" in proc.stdout and "generating keys" in proc.stdout
