"""Throughput requests evaluated on an executor: ``secquant serve --executor URL``.

With ``ServiceConfig(executor=URL)`` (what
:func:`~secquant.backends.executors.url.executor_from_url` accepts: ``fork:N``,
``local``, ``ray:auto``, ``ray://host:10001``) the service evaluates every
request of a THROUGHPUT-mode BFV or CKKS model through
:meth:`~secquant.backends.executors.base.Executor.map_batches` instead of in a
thread of its own process.  A served model has one scheme and one layout, so
for LATENCY-mode BFV/CKKS, Paillier and plain models the URL is still checked
but no executor is kept: their requests run in process, as without it (a
warning says so at start).

* **Created once, closed once.**  :meth:`Offload.start` makes the executor when
  the app is built: an unknown URL is a :class:`~secquant.errors.ConfigError`,
  and a Ray executor connects at once, so an unreachable cluster fails the
  start.  :meth:`Offload.close` ends it when the server shuts down.
* **Public material only.**  A session's
  :class:`~secquant.backends.executors.recipe.ServerRecipe` (model, options,
  the session's public material, client-spec digest; never a secret key: the
  session store refused material carrying one) is made on its first request
  and kept (LRU, ``max_live_roles``).  Forked workers inherit the session's
  server role (nothing is serialized).  Ray actors build a server role from
  the recipe bytes once and keep the roles of the last few recipes
  (:class:`~secquant.backends.executors.ray.RayExecutor` ``recipes``), so
  sessions that take turns do not rebuild them.
* **One slot batch, one job.**  A request of B slot batches is split into B
  requests of one batch (:class:`~.split.BatchSplit`), which run on the
  workers side by side; their results are merged into the one frame the whole
  request would have given.
* **One stream at a time.**  A dispatcher thread owns the executor (executors
  need not be thread-safe, and the service uses exactly the workers the URL
  names) and runs one ``map_batches`` stream at a time: queued requests of the
  stream's session join it and run on the workers together; requests of other
  sessions wait for the next stream.  Offloaded requests take no evaluation
  slot of this process (``max_concurrent_evaluations``); they are bounded by
  ``max_concurrent_requests`` and the executor's ``in_flight``.
* **Errors stay with their request.**  When a stream of several requests
  fails, the ones not yet answered run again one by one, so only the bad
  payload fails (422, as in process).  A failure of the executor itself
  (:class:`~secquant.backends.executors.base.ExecutorError`: a cluster gone, a
  worker that died on every attempt) is logged and answered 503 with
  ``Retry-After``, without the executor's details.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from secquant.backends.executors.base import Executor, ExecutorError, check_count
from secquant.backends.executors.recipe import ServerRecipe, recipe_for
from secquant.errors import ConfigError, SecquantError
from secquant.protocol.errors import CiphertextError, ServerBusyError
from secquant.protocol.inference.limits import throughput
from secquant.protocol.inference.split import BatchSplit

__all__ = ["ExecutorUnavailableError", "Offload", "offloads"]

log = logging.getLogger("secquant.protocol")


class ExecutorUnavailableError(ServerBusyError):
    """The executor could not evaluate a request (its cluster is gone, a worker died on every attempt, or the
    server is shutting down): 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message, retry_after)


def offloads(binding: Any) -> bool:
    """Whether requests of ``binding`` go to an executor: BFV and CKKS in THROUGHPUT mode."""
    return binding.scheme in ("bfv", "ckks") and throughput(binding)


def _client_error(exc: Exception) -> Exception:
    """What the client is told: the server role's own error, :class:`CiphertextError` when the backend choked on
    the payload, :class:`ExecutorUnavailableError` when the executor itself failed."""
    if isinstance(exc, ExecutorError):
        log.warning("the executor failed a request: %s", exc)
        return ExecutorUnavailableError("the server's executor could not evaluate this request; retry later")
    cause = getattr(exc, "cause", None)  # a Ray task error wraps the worker's own exception
    if isinstance(cause, Exception):
        exc = cause
    if isinstance(exc, SecquantError):
        return exc
    return CiphertextError(f"the backend could not evaluate this batch: {type(exc).__name__}: {exc}")


def _connect(executor: Executor) -> None:
    """Connect a Ray executor now (starting its local cluster), so an unreachable cluster fails the start."""
    from secquant.backends.executors.ray import RayExecutor

    if isinstance(executor, RayExecutor):
        executor.gcs_address()


@dataclass(eq=False)
class _Job:
    """One queued request: its session key, the session's recipe, its payload and where its answer goes."""

    key: str
    recipe: ServerRecipe
    payload: bytes
    future: Future[bytes]


@dataclass(eq=False)
class _Pending:
    """A job in a stream: how many parts (slot batches) it was split into, and their results so far."""

    job: _Job
    parts: int
    results: list[bytes] = dataclasses.field(default_factory=list)


class Offload:
    """Evaluates requests on an executor through one dispatcher thread (see the module docstring).

    Args:
        executor: Where requests run; this object owns it and closes it.
        base: The served model's recipe with empty public material; a session's
            recipe is this one with the session's material and server role.
        max_recipes: Session recipes kept (least recently used first out).
        split: How requests split into slot batches (None: never split).

    Raises:
        ConfigError: ``max_recipes`` below 1.
    """

    def __init__(self, executor: Executor, base: ServerRecipe, max_recipes: int = 8,
                 split: BatchSplit | None = None) -> None:
        self.max_recipes = check_count(max_recipes, "max_recipes")
        self.executor, self._base, self._split = executor, base, split
        self._recipes: OrderedDict[str, ServerRecipe] = OrderedDict()
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="secquant-executor", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Offload({self.executor!r})"

    @classmethod
    def start(cls, url: str | None, binding: Any, max_recipes: int = 8) -> Offload | None:
        """The offload of ``binding``'s requests to the executor ``url`` names, or None.

        None when ``url`` is None, or when the model's requests run in process
        (LATENCY mode, Paillier, plain; logged as a warning).

        Raises:
            ConfigError: an unknown URL, Ray not installed, or compile options that
                cannot travel to workers.
            ExecutorError: the Ray cluster cannot be reached.
        """
        if url is None:
            return None
        from secquant.backends.executors.url import executor_from_url

        executor = executor_from_url(url)
        if not offloads(binding):
            log.warning("executor %s is not used: requests of this %s model run in this process (an executor "
                        "evaluates THROUGHPUT-mode BFV and CKKS requests only)", url, binding.scheme)
            executor.close()
            return None
        try:
            try:
                base = recipe_for(binding.em, b"")
            except ConfigError as exc:
                raise ConfigError(f"executor {url!r} cannot serve this model ({exc}); serve it without an "
                                  "executor") from exc
            _connect(executor)
            offload = cls(executor, base, max_recipes, BatchSplit.of(binding.em))
        except BaseException:
            executor.close()
            raise
        log.info("throughput requests run on %r (%d workers)", executor, executor.workers)
        return offload

    # -- request side (event loop and its threads) -----------------------------
    def recipe(self, key: str, role: Any, material: Callable[[], bytes]) -> ServerRecipe:
        """The recipe of session ``key`` served by ``role``: made once from ``material()`` and kept."""
        with self._cond:
            cached = self._recipes.get(key)
            if cached is not None and cached.local is role:
                self._recipes.move_to_end(key)
                return cached
        recipe = dataclasses.replace(self._base, public_material=bytes(material()), local=role)
        with self._cond:
            self._recipes[key] = recipe
            self._recipes.move_to_end(key)
            while len(self._recipes) > self.max_recipes:
                self._recipes.popitem(last=False)
        return recipe

    def submit(self, key: str, recipe: ServerRecipe, payload: bytes) -> Future[bytes]:
        """Queue one request of session ``key``; the future gets its encrypted result or its error.

        Raises:
            ExecutorUnavailableError: the server is shutting down.
        """
        future: Future[bytes] = Future()
        with self._cond:
            if self._closed:
                raise ExecutorUnavailableError("the server is shutting down; retry later")
            self._jobs.append(_Job(key, recipe, payload, future))
            self._cond.notify()
        return future

    async def evaluate(self, key: str, role: Any, material: Callable[[], bytes], payload: bytes) -> bytes:
        """The encrypted result of one request of session ``key`` (see :meth:`recipe`, :meth:`submit`).

        Raises:
            SecquantError: the server role refused the payload (as in process), or
                :class:`ExecutorUnavailableError`.
        """
        recipe = await asyncio.to_thread(self.recipe, key, role, material)
        return await asyncio.wrap_future(self.submit(key, recipe, payload))

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new requests, fail the queued ones, wait up to ``timeout`` s for the running stream and
        close the executor.  Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            queued, self._jobs = list(self._jobs), deque()
            self._recipes.clear()
            self._cond.notify_all()
        for job in queued:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ExecutorUnavailableError("the server is shutting down; retry later"))
        self._thread.join(timeout)
        self.executor.close()

    # -- dispatcher thread -----------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                first = self._jobs.popleft()
            if first.future.set_running_or_notify_cancel():  # False: its request was cancelled meanwhile
                self._stream(first, alone=False)

    def _take(self, key: str) -> _Job | None:
        """The next queued job, if it belongs to session ``key`` (jobs keep their order), marked running."""
        with self._cond:
            while not self._closed and self._jobs and self._jobs[0].key == key:
                job = self._jobs.popleft()
                if job.future.set_running_or_notify_cancel():
                    return job
        return None

    def _stream(self, first: _Job, alone: bool) -> None:
        """Evaluate ``first`` and, unless ``alone``, the queued jobs of its session that follow it; each
        job's slot batches go to the executor as parts of their own."""
        pending: deque[_Pending] = deque()  # taken and not yet answered, in order

        def parts_of(job: _Job) -> Iterator[bytes]:
            count, parts = self._split.split(job.payload) if self._split else (1, iter([job.payload]))
            pending.append(_Pending(job, count))
            yield from parts

        def payloads() -> Iterator[bytes]:
            yield from parts_of(first)
            while not alone:
                job = self._take(first.key)
                if job is None:
                    return
                yield from parts_of(job)

        try:
            for expected, ev in enumerate(self.executor.map_batches(first.recipe, payloads())):
                if ev.index != expected or not pending:
                    raise ExecutorError(f"the executor returned part {ev.index} where {expected} belongs")
                head = pending[0]
                head.results.append(ev.result)
                if len(head.results) == head.parts:  # merged first: a merge that fails leaves the job pending
                    result = self._split.merge(head.results) if self._split else head.results[0]
                    pending.popleft().job.future.set_result(result)
            if pending:
                raise ExecutorError(f"{len(pending)} request(s) of the stream never came back")
        except Exception as exc:  # every job gets an answer, whatever failed
            self._fail([p.job for p in pending], exc)

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        """Answer the unanswered ``jobs`` of a failed stream: rerun each alone (which payload failed is not
        known), unless there is one or the executor itself failed."""
        if len(jobs) > 1 and not isinstance(exc, ExecutorError):
            for job in jobs:
                self._stream(job, alone=True)
            return
        error = _client_error(exc)
        for job in jobs:
            job.future.set_exception(error)
