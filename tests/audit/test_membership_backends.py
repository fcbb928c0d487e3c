"""Shadow training backends give identical models: serial, joblib and (if installed) a local Ray."""

from __future__ import annotations

import numpy as np
import pytest

from secquant.audit.membership.shadows import Backend, ModelJob, run_jobs
from secquant.audit.membership.targets import Family, Target
from secquant.audit.membership.training import TrainSpec
from secquant.errors import ConfigError


def _jobs(n: int = 160, models: int = 3) -> tuple[list[ModelJob], np.ndarray, np.ndarray]:
    from secquant.data import load_dataset

    d = load_dataset("digits")
    x, y = d.x_train[:n].reshape(n, -1), d.y_train[:n]
    rng = np.random.default_rng(0)
    jobs = [ModelJob(i, Family.STANDARD, (rng.random(n) < 0.5).astype(np.int64), (Target(), Target(bits=4)), i)
            for i in range(models)]
    return jobs, x, y


SPEC = TrainSpec(hidden=8, epochs=2)


def _same(a, b) -> None:
    assert [r.index for r in a] == [r.index for r in b]
    for ra, rb in zip(a, b):
        assert ra.logits.keys() == rb.logits.keys()
        for k in ra.logits:
            np.testing.assert_array_equal(ra.logits[k], rb.logits[k])


def test_joblib_matches_serial_bit_for_bit() -> None:
    jobs, x, y = _jobs()
    serial = run_jobs(jobs, x, y, 10, SPEC, backend="serial", progress=False)
    parallel = run_jobs(jobs, x, y, 10, SPEC, backend=Backend.JOBLIB, n_jobs=2, progress=True)
    _same(serial, parallel)
    assert all(set(r.logits) == {"float", "int4"} for r in serial)


@pytest.mark.slow
def test_ray_local_instance_matches_serial() -> None:
    """Starts (and stops) a local Ray instance with 2 CPUs; about 10-20 s."""
    pytest.importorskip("ray")
    jobs, x, y = _jobs(models=2)
    _same(run_jobs(jobs, x, y, 10, SPEC, backend="serial", progress=False),
          run_jobs(jobs, x, y, 10, SPEC, backend="ray", n_jobs=2, progress=False))


def test_job_and_backend_validation() -> None:
    jobs, x, y = _jobs(models=1)
    with pytest.raises(ConfigError, match="backend"):
        run_jobs(jobs, x, y, 10, SPEC, backend="dask")
    with pytest.raises(ConfigError, match="n_jobs"):
        run_jobs(jobs, x, y, 10, SPEC, n_jobs=0)
    with pytest.raises(ConfigError, match="DPSGD jobs need"):
        run_jobs([ModelJob(0, Family.DPSGD, jobs[0].counts, (Target("dpsgd"),), 0)], x, y, 10, SPEC)
    with pytest.raises(ConfigError, match="non-negative"):
        ModelJob(0, Family.STANDARD, np.array([-1, 2, 3]), (Target(),), 0)
    with pytest.raises(ConfigError, match="at least 2"):
        ModelJob(0, Family.STANDARD, np.array([0, 0, 1]), (Target(),), 0)
    with pytest.raises(ConfigError, match="family"):
        ModelJob(0, Family.STANDARD, np.array([1, 1, 1]), (Target("dpsgd"),), 0)
