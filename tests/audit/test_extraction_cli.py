"""``secquant audit extraction`` and the two issue-13 examples, run small as a user would.

Oracles: the exact-extraction result the CLI must report for a logistic model
(99 % fidelity first reached at 31 = d + 1 queries), files written, a signed
and encrypted model loaded by the CLI only with the right keys, and the
examples' own bit-exactness and refusal checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_examples import run_example

pytest.importorskip("cryptography")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secquant", "audit", "extraction", *args], check=False,
                          capture_output=True, text=True, timeout=600)


def test_cli_audits_a_trained_logistic_victim(tmp_path: Path) -> None:
    out = tmp_path / "report"
    r = _cli("--victim", "logistic", "--budgets", "16,31", "--attacks", "equation", "--policies", "full,eps1",
             "--epochs", "10", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "full: to stay below 90% fidelity, at most 16 queries per key" in r.stdout and "ε per query" in r.stdout
    data = json.loads((out / "results.json").read_text())
    full = next(s for s in data["summary"] if s["policy"] == "full")
    assert full["queries_to_99"] == 31 and data["victim"]["features"] == 30
    assert {p.name for p in out.iterdir()} == {"results.json", "table.txt", "fidelity.png", "summary.md"}


def test_cli_loads_a_signed_encrypted_model_only_with_its_keys(tmp_path: Path) -> None:
    from secquant.audit.extraction.victims import train_victim
    from secquant.sealing import ModelKey
    from secquant.signing import generate_signing_keys

    qm = train_victim("logistic", "breast_cancer", epochs=5).qm
    key, pub = generate_signing_keys(tmp_path, "owner")
    model_key = ModelKey.generate().write(tmp_path / "model.key")
    path = qm.save(tmp_path / "m.npz", sign_with=key, encrypt_with=model_key)
    common = ["--model", str(path), "--data", "breast_cancer", "--budgets", "31", "--attacks", "equation",
              "--policies", "full", "--no-plots", "--out", str(tmp_path / "r")]
    r = _cli(*common, "--trusted", str(pub), "--model-key", str(model_key))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fidelity" in r.stdout and (tmp_path / "r" / "summary.md").exists()
    r = _cli(*common, "--model-key", str(model_key), "--trusted", str(tmp_path / "nobody.pub"))
    assert r.returncode != 0
    r = _cli(*common, "--trusted", str(pub))
    assert r.returncode == 2 and "encrypted" in r.stderr


def test_cli_refuses_unknown_policies(tmp_path: Path) -> None:
    r = _cli("--policies", "gauss", "--out", str(tmp_path), "--epochs", "1", "--budgets", "31")
    assert r.returncode == 2 and "unknown release policy" in r.stderr


def test_model_protection_example() -> None:
    out = run_example("model_protection.py", "--epochs", "3")
    assert "forward_int bit-exact: True" in out and "all protections hold" in out
    assert out.count("refused") == 4


def test_extraction_audit_example(tmp_path: Path) -> None:
    out = run_example("extraction_audit.py", "--budgets", "16,31", "--steps", "50", "--epochs", "5",
                      "--out", str(tmp_path / "x"))
    # breast cancer is easy: a surrogate trained on 16 answers already agrees on >= 90 % of held-out inputs
    assert "full: to stay below 90% fidelity, fewer than 16 queries per key" in out
    assert (tmp_path / "x" / "fidelity.png").exists() and (tmp_path / "x" / "summary.md").exists()
