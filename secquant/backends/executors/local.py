"""Whole batches in forked worker processes: :class:`LocalExecutor` (what ``workers=N`` uses).

SEAL work does not speed up with threads on these machines, but separate
processes do.  The workers are forked from the caller, so nothing is
serialized to give them their roles: they inherit them from the caller's
memory, and the copies end with the pool.

* :meth:`LocalExecutor.run` (``em.forward_int(xq, workers=N)``): each worker
  runs encrypt -> evaluate -> decrypt on its own batches and returns only the
  decrypted integers, so encryption is parallel too.  The workers are copies
  of the client process (the secret key is in their memory, as in the caller's;
  it is never serialized or written).
* :meth:`LocalExecutor.map_batches`: the workers inherit only a server role
  and evaluate payloads encrypted elsewhere.

A worker that dies breaks the pool: the pool is forked again and the lost
batches are resubmitted (``max_retries`` times each).  Fork is what makes this
possible, so this needs a platform with the ``fork`` start method (Linux).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from numpy.typing import NDArray

from secquant.backends.base import ClientRole, ServerRole, run_rounds
from secquant.backends.executors.base import (
    BatchJob,
    BatchOutput,
    Evaluated,
    ExecutorError,
    RunStats,
    Window,
    check_count,
)
from secquant.backends.executors.recipe import ServerRecipe
from secquant.errors import ConfigError

__all__ = ["LocalExecutor"]

#: The roles forked workers inherit: set only while a pool forks (under ``_FORK_LOCK``).
_STATE: tuple[ClientRole | None, ServerRole] | None = None
_FORK_LOCK = threading.Lock()

P = TypeVar("P")
R = TypeVar("R")


def _ping(_: int = 0) -> int:
    return os.getpid()


def _one_thread() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread per worker: the workers already fill the cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the he extra
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _roles() -> tuple[ClientRole | None, ServerRole]:
    if _STATE is None:
        raise ExecutorError("internal: a worker started without its roles")
    return _STATE


def _evaluate(index: int, payload: bytes) -> tuple[int, bytes, float]:
    _, server = _roles()
    with _one_thread():
        t0 = time.perf_counter()
        result = server.evaluate(payload)
    return index, result, time.perf_counter() - t0


def _round_trip(index: int, xq: NDArray[Any]) -> tuple[int, NDArray[Any], dict[str, float]]:
    client, server = _roles()
    if client is None:
        raise ExecutorError("internal: a round-trip worker started without a client role")
    with _one_thread():
        t0 = time.perf_counter()
        payload = client.encrypt(xq)
        t1 = time.perf_counter()
        result, rounds = run_rounds(client, server, payload)
        t2 = time.perf_counter()
        out = client.decrypt(result)
        t3 = time.perf_counter()
    return index, out, {"encrypt": t1 - t0, "evaluate": t2 - t1, "decrypt": t3 - t2, "rounds": float(rounds),
                        "request_bytes": float(len(payload)), "response_bytes": float(len(result))}


class _PoolWindow(Window[P, R]):
    """A :class:`Window` over a forked ``ProcessPoolExecutor``; a broken pool is forked again."""

    def __init__(self, state: tuple[ClientRole | None, ServerRole], workers: int, task: Callable[..., Any],
                 wrap: Callable[[Any, int], R], limit: int, max_retries: int) -> None:
        super().__init__(limit, max_retries)
        self._state, self._workers, self._task, self._wrap = state, workers, task, wrap
        self._futures: dict[Future[Any], tuple[int, int]] = {}
        self._broken = False
        self._pool = self._fork()

    def _fork(self) -> ProcessPoolExecutor:
        global _STATE
        with _FORK_LOCK:
            _STATE = self._state
            try:
                pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("fork"))
                list(pool.map(_ping, range(self._workers)))  # every worker forks now, while _STATE is set
            finally:
                _STATE = None
        return pool

    def submit(self, index: int, item: P, attempt: int) -> None:
        if self._broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._broken = self._fork(), False
        self._futures[self._pool.submit(self._task, index, item)] = (index, attempt)

    def wait(self) -> list[tuple[int, R | BaseException]]:
        finished, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        out: list[tuple[int, R | BaseException]] = []
        for fut in finished:
            index, attempt = self._futures.pop(fut)
            exc = fut.exception()
            if exc is not None:
                self._broken = self._broken or isinstance(exc, BrokenProcessPool)
                out.append((index, exc))
                continue
            got = fut.result()
            if got[0] != index:
                raise ExecutorError(f"a worker returned batch {got[0]} for batch {index}")
            out.append((index, self._wrap(got, attempt)))
        return out

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenProcessPool)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class LocalExecutor:
    """Batches in ``workers`` forked processes on this machine (see the module docstring).

    Args:
        workers: Worker processes (>= 1).
        in_flight: Most batches outstanding at once (default ``2 * workers``).
        max_retries: Resubmissions of a batch whose worker died (default 2).

    Raises:
        ConfigError: a count out of range, or the platform cannot fork.
    """

    def __init__(self, workers: int = 2, *, in_flight: int | None = None, max_retries: int = 2) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ConfigError("forked workers need the 'fork' start method (Linux); use workers=1 or a RayExecutor")
        self._workers = check_count(workers, "workers")
        self.in_flight = check_count(2 * self._workers if in_flight is None else in_flight, "in_flight")
        self.max_retries = check_count(max_retries, "max_retries", 0)
        self.last_stats: RunStats | None = None

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self._workers}, in_flight={self.in_flight})"

    @property
    def workers(self) -> int:
        """Worker processes per stream."""
        return self._workers

    def map_batches(self, recipe: ServerRecipe, payloads: Iterable[bytes]) -> Iterator[Evaluated]:
        """Evaluate payloads in forked workers that inherit ``recipe.server()``; results in input order."""
        return self._stream((None, recipe.server()), self._workers, _evaluate,
                            lambda got, attempt: Evaluated(got[0], got[1], got[2], attempt), payloads)

    def run(self, job: BatchJob) -> Iterator[BatchOutput]:
        """Encrypt, evaluate and decrypt each batch in a forked copy of this process; outputs in input order."""
        return self._stream((job.client, job.server), min(self._workers, max(1, len(job.inputs))), _round_trip,
                            lambda got, attempt: BatchOutput(got[0], got[1], got[2]), job.inputs)

    def _stream(self, state: tuple[ClientRole | None, ServerRole], workers: int, task: Callable[..., Any],
                wrap: Callable[[Any, int], R], items: Iterable[Any]) -> Iterator[R]:
        window: _PoolWindow[Any, R] = _PoolWindow(state, workers, task, wrap, self.in_flight, self.max_retries)
        try:
            yield from window.stream(items)
        finally:
            window.close()
            self.last_stats = window.stats

    def close(self) -> None:
        """Nothing to release: every stream forks its own pool and ends it."""
