"""Jobs the page polls: one worker thread runs them in order, each reporting its stage as it goes.

A job is what one press of Run starts (key generation on first use, upload of
the evaluation keys, encryption, the server's evaluation, decryption, the
reference check).  The page polls ``GET /api/jobs/{id}`` and shows the current
stage with its elapsed time, the finished stages with theirs, and byte progress
while keys upload, so it never sits still without saying why.
"""

from __future__ import annotations

import enum
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from secquant.web.errors import WebError

__all__ = ["Job", "JobRunner", "JobState"]

log = logging.getLogger("secquant.web")
_STARTING = "starting"


class JobState(enum.Enum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Job:
    """One unit of work and what the page shows of it.

    Attributes:
        id: Random url-safe id.
        title: What the job does, for the page.
        state: Queued, running, done or failed.
        stage: What it is doing now (one line).
        stages: Finished stages as (name, seconds).
        progress: (done, total, unit) of the current stage, when it is measurable.
        result: The JSON-ready result once done.
        error: ``{"error": code, "detail": message}`` once failed.
    """

    title: str
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: JobState = JobState.QUEUED
    stage: str = "queued behind the running job"
    stages: list[tuple[str, float]] = field(default_factory=list)
    progress: tuple[int, int, str] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    created: float = field(default_factory=time.monotonic)
    _stage_start: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_stage(self, name: str) -> None:
        """Finish the current stage (its duration is kept) and start ``name``."""
        with self._lock:
            if name == self.stage:
                return
            now = time.monotonic()
            if self.state is JobState.RUNNING and self.stage != _STARTING:
                self.stages.append((self.stage, now - self._stage_start))
            self.stage, self._stage_start, self.progress = name, now, None

    def set_progress(self, done: int, total: int, unit: str = "bytes") -> None:
        """Measurable progress of the current stage (``0 <= done <= total``)."""
        with self._lock:
            self.progress = (max(0, min(done, total)), max(total, 0), unit)

    def start(self) -> None:
        """Mark the job running."""
        with self._lock:
            self.state, self._stage_start = JobState.RUNNING, time.monotonic()
            self.stage = _STARTING

    def finish(self, result: dict[str, Any] | None = None, error: dict[str, str] | None = None) -> None:
        """Mark the job done (with ``result``) or failed (with ``error``)."""
        with self._lock:
            self.stages.append((self.stage, time.monotonic() - self._stage_start))
            self.state = JobState.FAILED if error is not None else JobState.DONE
            self.stage = "failed" if error is not None else "done"
            self.result, self.error, self.progress = result, error, None

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view for ``GET /api/jobs/{id}``."""
        with self._lock:
            running = self.state is JobState.RUNNING
            return {
                "id": self.id, "title": self.title, "state": self.state.value, "stage": self.stage,
                "stage_seconds": round(time.monotonic() - self._stage_start, 2) if running else None,
                "stages": [{"name": n, "seconds": round(s, 3)} for n, s in self.stages],
                "progress": None if self.progress is None else
                dict(zip(("done", "total", "unit"), self.progress)),
                "elapsed": round(time.monotonic() - self.created, 2),
                "result": self.result, "error": self.error,
            }


class JobRunner:
    """Runs submitted jobs one at a time in a daemon thread (a Client is not shared between threads).

    Args:
        keep: How many finished jobs stay visible (>= 1).
    """

    def __init__(self, keep: int = 64) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Callable[[Job], dict[str, Any]]]] = queue.Queue()
        self._keep = max(1, keep)
        self._lock = threading.Lock()
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._work, name="secquant-web-jobs", daemon=True)
        self._thread.start()

    def submit(self, title: str, fn: Callable[[Job], dict[str, Any]]) -> Job:
        """Queue ``fn(job)``; its return value becomes the job's result.

        Args:
            title: What the job does.
            fn: The work; raises :class:`WebError` for failures the page should explain.
        """
        job = Job(title=title)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                self._jobs.popitem(last=False)
        self._queue.put((job, fn))
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id, if it is still kept."""
        with self._lock:
            return self._jobs.get(job_id)

    def _work(self) -> None:
        while True:
            job, fn = self._queue.get()
            self.current = job
            job.start()
            try:
                job.finish(result=fn(job))
            except WebError as exc:
                job.finish(error={"error": exc.code, "detail": str(exc)})
            except Exception as exc:
                log.exception("job %s failed", job.id)
                job.finish(error={"error": type(exc).__name__, "detail": f"unexpected error: {exc}"})
            finally:
                self.current = None
