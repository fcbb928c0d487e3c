"""``secquant audit mechanism`` and ``examples/audit_mechanism.py`` run end to end at small sizes.

Oracle: the verdict column must match the planted bug list (correct mechanisms
"no", broken ones "YES"); at 30,000 draws a correct mechanism is flagged with
probability <= 5% per case, and the seeds are fixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from secquant.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_table_and_writes_json(tmp_path: Path, capsys: Any) -> None:
    out_json = tmp_path / "table.json"
    code = main(["audit", "mechanism", "--samples", "30000", "--only", "laplace", "randomized_response",
                 "noise_reused", "fixed_point_laplace_unscaled", "--json", str(out_json), "--check"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "claimed ε" in text and "accountant ε" in text and "lower bound" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line and line.split()[0] in {
        "laplace", "randomized_response", "noise_reused", "fixed_point_laplace_unscaled"}}
    assert lines["laplace"].split()[-2] == "no" and lines["noise_reused"].split()[-2] == "YES"
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["case"] for r in rows][:2] == ["laplace", "randomized_response"]


def test_cli_rejects_unknown_case_and_bad_confidence(capsys: Any) -> None:
    assert main(["audit", "mechanism", "--only", "nope"]) == 2
    assert main(["audit", "mechanism", "--only", "laplace", "--confidence", "1.5", "--samples", "2000"]) == 2
    assert "confidence" in capsys.readouterr().err
    assert main(["audit", "mechanism", "--list"]) == 0


def test_example_runs_small(tmp_path: Path) -> None:
    out_json = tmp_path / "buggy.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "audit_mechanism.py"), "--samples", "30000", "--json", str(out_json)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DP audit of noisy_clipped_sum: no violation" in proc.stdout
    assert "DP audit of buggy_sum: VIOLATION" in proc.stdout
    assert json.loads(out_json.read_text())["violation"] is True
