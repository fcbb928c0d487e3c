"""Every example in examples/ runs, at a small size, as a new user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, timeout: int = 600) -> str:
    """Run ``examples/<name>`` with this interpreter; return its stdout (fails on a non-zero exit)."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_quantize_digits_example() -> None:
    out = run_example("quantize_digits.py", "--epochs", "5", "--bits", "6")
    assert "reloaded model identical: True" in out and "refused at layer" in out


@pytest.mark.slow
def test_demo_command_plain_scheme_runs_small() -> None:
    proc = subprocess.run([sys.executable, "-m", "secquant", "demo", "--data", "digits", "--scheme", "plain",
                           "--limit", "32", "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bit-exact vs the integer reference" in proc.stdout


def test_galois_keys_example() -> None:
    """Both key policies run encrypted within their bounds; power-of-two keys are fewer, key switches more."""
    out = run_example("galois_keys.py", "--limit", "1", "--epochs", "2")
    assert "every error within its stated bound: True" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["steps"],
                                                                                           ["powers_of_two"])}
    assert int(rows["powers_of_two"][2]) < int(rows["steps"][2])  # keys
    assert int(rows["powers_of_two"][5]) > int(rows["steps"][5])  # key switches


def test_release_noise_example() -> None:
    """BFV and CKKS servers add the policy's noise; the auditor does not refute the claim."""
    out = run_example("release_noise.py", "--limit", "100", "--epochs", "10", "--audit-samples", "20000")
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["bfv"], ["ckks"])]
    assert len(rows) == 2 and all(int(r[3]) == 170 and 3.0 < float(r[6]) < 5.0 for r in rows), out
    assert "claim violated: False" in out


def test_ckks_circuit_privacy_example() -> None:
    """Flooded and plain responses within their bounds; the auditor tells the weights apart only without flood."""
    out = run_example("ckks_circuit_privacy.py", "--epochs", "5", "--inputs", "16", "--audit-samples", "30000")
    assert "every deviation within its stated bound: True" in out
    assert "audit off: " in out and "weights told apart: True" in out
    assert "audit flood: " in out and out.split("audit flood: ")[1].split("\n")[0].endswith("told apart: False")
    assert "all checks passed" in out


def test_paired_throughput_example() -> None:
    """Two features per slot halve the request (same primes) and stay within the stated bound."""
    out = run_example("paired_throughput.py", "--inputs", "16", "--channels", "2", "--epochs", "1",
                      "--dataset", "digits")
    rows = [line for line in out.splitlines() if "per image" in line]
    kb = [float(r.split("request")[1].split()[0]) for r in rows]
    primes = [r.split("primes=")[1].split("]")[0] for r in rows]
    assert len(rows) == 2 and all(r.endswith("True") for r in rows), out
    assert kb[1] < (0.55 if primes[0] == primes[1] else 0.7) * kb[0], out


def test_shared_gather_example() -> None:
    """Each patch is sent once under BALANCED and BYTES: a third of LATENCY's request, within the bound."""
    out = run_example("shared_gather.py", "--channels", "16", "--images", "1", "--epochs", "1")
    rows = [line for line in out.splitlines() if line.startswith("transfer=")]
    kb = {r.split()[0]: float(r.split("request")[1].split()[0]) for r in rows}
    assert len(rows) == 3 and all(r.endswith("True") for r in rows), out
    assert "for 576 outputs, 1 ciphertext" in rows[1] and int(rows[1].split()[1]) < 576, out  # shared rows
    assert kb["transfer=balanced"] < 0.5 * kb["transfer=latency"] and kb["transfer=bytes"] <= kb["transfer=balanced"], out


def test_pruned_model_example() -> None:
    """A pruned copy (filters and half the dense weights zero) shows the client the same layout, under both schemes."""
    out = run_example("pruned_model.py", "--images", "1", "--epochs", "1")
    assert out.count("the client sees the same layout for both: True") == 2, out
    rows = [line for line in out.splitlines() if " galois steps " in line]
    assert len(rows) == 4 and all(r.endswith("True") for r in rows), out


def test_sized_ring_example() -> None:
    """A ring sized for 16 inputs is smaller than the full-batch one, sends fewer bytes, and is bit-exact."""
    out = run_example("sized_ring.py", "--inputs", "16", "--channels", "1", "--epochs", "1")
    rows = [line for line in out.splitlines() if "N=" in line]
    sizes = [int(r.split("N=")[1].split()[0]) for r in rows]
    mbs = [float(r.split("request")[1].split()[0]) for r in rows]
    assert len(rows) == 2 and sizes[1] < sizes[0] and mbs[1] < mbs[0], out
    assert "bit-exact: True" in out
