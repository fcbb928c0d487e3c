"""examples/paillier_logistic.py runs end to end at a small size and reports bit-exact results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "paillier_logistic.py"


def test_paillier_logistic_example_runs_small() -> None:
    # 2048-bit keys and 3 inputs keep it fast; the example defaults to 3072 bits.
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--dataset", "breast_cancer", "--n", "3", "--key-bits", "2048"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bit-exact to forward_int: True" in proc.stdout
