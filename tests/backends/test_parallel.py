"""Whole batches in forked workers give what one process gives."""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.errors import ConfigError


def _two_batches(qm, x, batch):
    reps = -(-(batch + 37) // len(x))
    return qm.quantize_input(np.concatenate([x] * reps)[: batch + 37])


def test_bfv_workers_are_bit_exact(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="throughput")
    batch = em.backend.batch_size()
    xq = _two_batches(qm, digits_mlp.x_test, batch)
    out = em.forward_int(xq, workers=2)
    assert em.last_timings["batches"] == 2.0 and em.last_timings["wall"] > 0
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))


def test_ckks_workers_stay_within_bound(digits_mlp):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "ckks", mode="throughput")
    xq = _two_batches(qm, digits_mlp.x_test, em.backend.batch_size())
    out = np.asarray(em.forward_int(xq, workers=2), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert em.last_timings["batches"] == 2.0
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]


def test_bad_worker_counts_are_refused(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "ckks", mode="throughput")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ConfigError, match="workers"):
            em.forward_int(digits_mlp.qm.quantize_input(digits_mlp.x_test[:2]), workers=bad)
    assert em.backend.batch_size() == em.parameters()["slots"]
    assert secquant.compile(digits_mlp.qm, "ckks", mode="latency").backend.batch_size() is None


@pytest.mark.slow
def test_throughput_workers_example_small() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "examples" / "throughput_workers.py"), "--schemes", "bfv",
                           "ckks", "--batches", "2", "--epochs", "5"], capture_output=True, text=True, timeout=900,
                          cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("bit-exact: True") == 2 and proc.stdout.count("within bound: True") == 2
