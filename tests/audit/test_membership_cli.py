"""The ``secquant audit membership`` command and the runnable example, at small sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secquant.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cli_writes_the_report_folder(tmp_path, capsys) -> None:
    out = tmp_path / "report"
    code = main(["audit", "membership", "--data", "digits", "--bits", "8,2", "--shadows", "2", "--out", str(out),
                 "--population", "200", "--evaluated", "1", "--epochs", "3", "--hidden", "8", "--dp-epsilon", "0",
                 "--policies", "full,round3", "--backend", "serial", "--no-progress", "--no-plots"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "int2" in printed and "lira_online" in printed and "report:" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["targets"] == ["float", "int8", "int2"]
    assert (out / "summary.md").exists() and not (out / "roc.png").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bits", "8,x"], "--bits"),
        (["--policies", "loud"], "release policy"),
        (["--attacks", "guess"], "--attacks"),
        (["--data", "cifar"], "dataset"),
        (["--dp-epsilon", "-1"], "--dp-epsilon"),
        (["--shadows", "0"], "shadows"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path, capsys, flags, message) -> None:
    code = main(["audit", "membership", "--out", str(tmp_path / "r"), "--no-progress", *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_example_runs_small(tmp_path) -> None:
    out = tmp_path / "ex"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "audit_membership.py"), "--population", "200", "--shadows", "2",
         "--epochs", "3", "--bits", "8,2", "--dp-epsilon", "0", "--no-plots", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lira_online" in proc.stdout
    assert (out / "summary.md").exists()
