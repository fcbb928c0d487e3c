"""Train many small models in parallel: joblib locally, Ray for clusters.

One :class:`ModelJob` trains one model on the population rows it includes
(``counts[i]`` copies of row ``i``; 0 excludes it) and scores every
:class:`~secquant.audit.membership.targets.Target` of its family on the whole
population.  Only logits travel back, so workers need no shared state.

Backends: ``serial`` (in process), ``joblib`` (processes on this machine,
default) and ``ray`` (``ray.init(address)``, local when no address is given;
``pip install ray``).  A tqdm bar counts finished models when ``progress``.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.audit.membership.targets import Family, Target, score_target
from secquant.audit.membership.training import DPSpec, TrainSpec, train_dpsgd, train_model
from secquant.errors import ConfigError, SecquantError
from secquant.quant.primitives import coerce_enum
from secquant.training import TrainingDivergedError

__all__ = ["Backend", "ModelJob", "ModelOutputs", "run_jobs"]


class Backend(enum.Enum):
    """Where models are trained."""

    SERIAL = "serial"
    JOBLIB = "joblib"
    RAY = "ray"


@dataclass(frozen=True, eq=False)
class ModelJob:
    """One model to train and score.

    Attributes:
        index: Position of the model in the audit (0 .. models-1).
        family: STANDARD or DPSGD training.
        counts: Copies of each population row in the training set, int array of shape ``(N,)``, >= 0.
        targets: What to score (all of ``family``).
        seed: Seeds training.
    """

    index: int
    family: Family
    counts: NDArray[np.int64]
    targets: tuple[Target, ...]
    seed: int

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts)
        if counts.ndim != 1 or counts.dtype.kind not in "iu" or (counts.size and counts.min() < 0):
            raise ConfigError("ModelJob.counts must be a 1-D array of non-negative integers")
        if int((counts > 0).sum()) < 2:
            raise ConfigError("a model needs at least 2 distinct training rows; enlarge the population")
        if any(t.family is not self.family for t in self.targets):
            raise ConfigError("every target of a ModelJob must belong to its family")


@dataclass(frozen=True, eq=False)
class ModelOutputs:
    """What a worker returns.

    Attributes:
        index: The job's index.
        family: The job's family.
        logits: Target label -> logits of shape ``(N, classes)`` on the whole population.
        errors: Target label -> message, for targets that could not be built (e.g. 2-bit overflow).
        accountant_epsilon: ε of the DP-SGD accountant (DPSGD family), else None.
        seconds: Wall time of the job.
    """

    index: int
    family: Family
    logits: dict[str, NDArray[np.float64]]
    errors: dict[str, str] = field(default_factory=dict)
    accountant_epsilon: float | None = None
    seconds: float = 0.0


def run_job(job: ModelJob, x: NDArray[np.float32], y: NDArray[np.int64], n_classes: int,
            train: TrainSpec, dp: DPSpec | None) -> ModelOutputs:
    """Train one model and score its targets (the worker function of every backend)."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = np.repeat(np.arange(len(y)), job.counts)
    xs, ys = x[rows], y[rows]
    eps = None
    if job.family is Family.DPSGD and dp is None:
        raise ConfigError("a DPSGD job needs a DPSpec")
    try:
        if job.family is Family.DPSGD:
            model, eps = train_dpsgd(xs, ys, n_classes, train, dp, job.seed)  # type: ignore[arg-type]
        else:
            model = train_model(xs, ys, n_classes, train, job.seed)
    except TrainingDivergedError as exc:  # every target of this model is unusable; the audit goes on
        failed = {t.label: f"{type(exc).__name__}: {exc}" for t in job.targets}
        return ModelOutputs(job.index, job.family, {}, failed, None, time.perf_counter() - start)
    calibration = x[job.counts > 0]
    logits: dict[str, NDArray[np.float64]] = {}
    errors: dict[str, str] = {}
    for target in job.targets:
        try:
            z = score_target(model, target, calibration, x)
        except SecquantError as exc:
            errors[target.label] = f"{type(exc).__name__}: {exc}"
            continue
        if not np.all(np.isfinite(z)):
            errors[target.label] = "scores contain NaN or infinity"
            continue
        logits[target.label] = z.astype(np.float32)
    return ModelOutputs(job.index, job.family, logits, errors, eps, time.perf_counter() - start)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="model")


def _joblib(jobs: Sequence[ModelJob], args: tuple[Any, ...], n_jobs: int) -> Iterator[ModelOutputs]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    yield from parallel(delayed(run_job)(job, *args) for job in jobs)


def _ray(jobs: Sequence[ModelJob], args: tuple[Any, ...], n_jobs: int, address: str | None) -> Iterator[ModelOutputs]:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("backend='ray' needs Ray: pip install ray (or use backend='joblib')") from exc
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            # "local" always starts a fresh instance; None would join any cluster already running
            # on this machine (and then refuse num_cpus).
            address = "local"
            kwargs["num_cpus"] = n_jobs
        ray.init(address=address, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(run_job)
        refs = [ray.put(a) for a in args[:2]]
        pending = [remote.remote(job, *refs, *args[2:]) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def run_jobs(
    jobs: Sequence[ModelJob],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    n_classes: int,
    train: TrainSpec,
    dp: DPSpec | None = None,
    *,
    backend: Backend | str = Backend.JOBLIB,
    n_jobs: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> list[ModelOutputs]:
    """Train and score every job; results come back sorted by ``(family, index)``.

    Args:
        jobs: The models to train.
        x: Population inputs ``(N, features)``; y: labels ``(N,)``.
        n_classes: Number of classes.
        train: Architecture and (non-private) training choices.
        dp: DP-SGD choices, needed when a job is in the DPSGD family.
        backend: ``serial``, ``joblib`` or ``ray``.
        n_jobs: Parallel workers (default: CPUs available, at most 2 on shared machines is wise).
        ray_address: Ray cluster address; None starts (and stops) a local instance.
        progress: Show a tqdm bar over the models.

    Raises:
        ConfigError: bad backend or worker count, Ray missing, DP job without ``dp``.
    """
    backend = coerce_enum(backend, Backend, "backend")
    if n_jobs is None:
        n_jobs = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ConfigError(f"n_jobs must be a positive int, got {n_jobs!r}")
    if dp is None and any(job.family is Family.DPSGD for job in jobs):
        raise ConfigError("DPSGD jobs need dp=DPSpec(...)")
    args = (np.asarray(x, dtype=np.float32).reshape(len(x), -1), np.asarray(y, dtype=np.int64), int(n_classes), train, dp)
    if backend is Backend.SERIAL or len(jobs) <= 1:
        stream: Iterator[ModelOutputs] = (run_job(job, *args) for job in jobs)
    elif backend is Backend.JOBLIB:
        stream = _joblib(jobs, args, int(n_jobs))
    else:
        stream = _ray(jobs, args, int(n_jobs), ray_address)
    bar = _progress(len(jobs), progress, f"training models ({backend.value})")
    out = []
    try:
        for result in stream:
            out.append(result)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return sorted(out, key=lambda r: (r.family.value, r.index))
