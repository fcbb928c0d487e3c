"""``secquant tune`` and examples/tune_mnist.py run end to end at a small size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secquant.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cli_tune_writes_json_with_both_moduli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tune.json"
    code = main(["tune", "--dataset", "digits", "--hidden", "16", "--validation", "200", "--calibration", "200",
                 "--epochs", "6", "--finetune-epochs", "1", "--qat-epochs", "1", "--qat-bits", "5",
                 "--target-drop", "3", "--no-progress", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "uniform 8-bit PTQ" in text and "modular" in text and "identical per image: True" in text
    data = json.loads(out.read_text())
    assert int(data["ptq8"]["modulus"]) > int(data["search"]["best"]["modulus"])
    assert data["qat"]["identical_predictions"] is True
    assert [s["stage"] for s in data["report"]["stages"]] == ["float", "polynomial", "quantized", "modular", "encrypted"]


def test_cli_bad_sizes_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--dataset", "digits", "--train-limit", "100", "--validation", "500", "--no-progress"]) == 2
    assert "must exceed --validation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "--hidden", "wide"])
    assert "comma-separated ints" in capsys.readouterr().err


def test_tune_mnist_example_runs_small() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tune_mnist.py"), "--train-limit", "900", "--test-limit", "200",
         "--hidden", "32", "--validation", "300", "--epochs", "3", "--finetune-epochs", "1", "--qat-epochs", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical per image: True" in proc.stdout and "modulus: uniform 8-bit" in proc.stdout
