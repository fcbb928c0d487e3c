"""The executor contract: whole batches on forked processes or on a Ray cluster.

An executor runs independent batches and hands results back **in input
order**, with at most ``in_flight`` batches outstanding (submitted and not yet
handed back), retrying a batch whose worker died.  Two levels:

* :meth:`Executor.map_batches` is server side only: encrypted payloads in,
  encrypted results out, evaluated by server roles built from a
  :class:`~.recipe.ServerRecipe` (public material, model, options: never a
  secret key).  A service that receives ciphertexts from remote clients uses
  this level.
* :meth:`Executor.run` is the whole round trip for a :class:`BatchJob`: the
  client role encrypts and decrypts where the executor allows it to live (in
  this process for Ray; in forked copies of it for :class:`~.local.LocalExecutor`).

:class:`Window` is the one dispatcher both executors use: it keys every
outcome by batch index, retries what a dead worker lost, refuses a batch that
comes back twice, and records :class:`RunStats`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from numpy.typing import NDArray

from secquant.backends.base import ClientRole, ServerRole
from secquant.errors import ConfigError, SecquantError

if TYPE_CHECKING:
    from secquant.backends.executors.recipe import ServerRecipe

__all__ = ["BatchJob", "BatchOutput", "Evaluated", "Executor", "ExecutorError", "RunStats", "Window",
           "check_count"]


class ExecutorError(SecquantError, RuntimeError):
    """A batch failed on every attempt, came back twice or never, or the cluster cannot be reached."""


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``.

    Raises:
        ConfigError: not an int (bools refused) or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class Evaluated:
    """One encrypted result of :meth:`Executor.map_batches`.

    Attributes:
        index: The batch's position in the input stream (0-based).
        result: The server role's encrypted result.
        seconds: Seconds the worker spent evaluating it.
        attempts: How many times it was submitted (1 unless a worker died).
    """

    index: int
    result: bytes
    seconds: float
    attempts: int


@dataclass(frozen=True, eq=False)
class BatchOutput:
    """One decrypted batch of :meth:`Executor.run`.

    Attributes:
        index: The batch's position (0-based).
        output: Decrypted centered integers, shape (batch, *output_shape).
        timings: Seconds in ``encrypt``, ``evaluate``, ``decrypt``, and ``rounds``,
            ``request_bytes``, ``response_bytes`` of this batch.
    """

    index: int
    output: NDArray[Any]
    timings: Mapping[str, float]


@dataclass(frozen=True)
class RunStats:
    """What the last stream did.

    Attributes:
        batches: Batches handed back.
        submitted: Submissions, retries included.
        retries: Resubmissions after a worker died.
        completions: For each batch index, how many results were accepted:
            all ones when nothing was lost or duplicated.
        max_outstanding: Most batches outstanding at once (<= ``in_flight``).
    """

    batches: int
    submitted: int
    retries: int
    completions: tuple[int, ...]
    max_outstanding: int


@dataclass(frozen=True, eq=False)
class BatchJob:
    """Everything :meth:`Executor.run` needs for one ``forward_int`` call.

    Attributes:
        client: The client role (holds the secret key; never sent anywhere).
        server: This process's server role (forked workers inherit it).
        recipe: Makes the :class:`~.recipe.ServerRecipe` remote workers build
            their server role from (called only by executors that send it).
        inputs: Integer inputs, one array per batch.
    """

    client: ClientRole
    server: ServerRole
    recipe: Callable[[], ServerRecipe]
    inputs: Sequence[NDArray[Any]]


@runtime_checkable
class Executor(Protocol):
    """Runs whole batches somewhere else: :class:`~.local.LocalExecutor`, :class:`~.ray.RayExecutor`."""

    @property
    def workers(self) -> int:
        """Worker processes (or actors) that evaluate batches."""

    @property
    def last_stats(self) -> RunStats | None:
        """What the last stream did (None before the first)."""

    def map_batches(self, recipe: ServerRecipe, payloads: Iterable[bytes]) -> Iterator[Evaluated]:
        """Evaluate encrypted payloads on server roles built from ``recipe``; results in input order."""

    def run(self, job: BatchJob) -> Iterator[BatchOutput]:
        """Encrypt, evaluate and decrypt every batch of ``job``; outputs in input order."""

    def close(self) -> None:
        """Release workers (and a cluster this executor started)."""


P = TypeVar("P")
R = TypeVar("R")
_END = object()


class Window(abc.ABC, Generic[P, R]):
    """In-order results of independent tasks, at most ``limit`` outstanding, bounded retries.

    Subclasses submit a task (:meth:`submit`) and wait for at least one
    outcome (:meth:`wait`); an outcome that is an exception for which
    :meth:`retryable` holds is resubmitted, up to ``max_retries`` times per task.

    Args:
        limit: Most tasks submitted and not yet handed back (>= 1).
        max_retries: Resubmissions allowed per task (>= 0).
    """

    def __init__(self, limit: int, max_retries: int) -> None:
        self.limit = check_count(limit, "in_flight")
        self.max_retries = check_count(max_retries, "max_retries", 0)
        self.stats: RunStats | None = None

    @abc.abstractmethod
    def submit(self, index: int, item: P, attempt: int) -> None:
        """Start task ``index`` (attempt 1, 2, ...)."""

    @abc.abstractmethod
    def wait(self) -> list[tuple[int, R | BaseException]]:
        """Block until at least one submitted task ends; its index and result or exception."""

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the worker died (the task may run again), not that the task is bad."""
        return False

    def stream(self, items: Iterable[P]) -> Iterator[R]:
        """Submit ``items`` lazily and yield their results in order.

        Raises:
            ExecutorError: a task failed on every attempt, or a result came back
                for a task that was not outstanding (lost or duplicated).
        """
        it = iter(items)
        held: dict[int, P] = {}
        attempts: dict[int, int] = {}
        done: dict[int, R] = {}
        completions: list[int] = []
        counters = {"submitted": 0, "retries": 0, "max_outstanding": 0}
        nxt, exhausted = 0, False
        try:
            while True:
                while not exhausted and len(held) + len(done) < self.limit:
                    item = next(it, _END)
                    if item is _END:
                        exhausted = True
                        break
                    index = len(completions)
                    held[index], attempts[index] = item, 1  # type: ignore[assignment]
                    completions.append(0)
                    self.submit(index, item, 1)  # type: ignore[arg-type]
                    counters["submitted"] += 1
                    counters["max_outstanding"] = max(counters["max_outstanding"], len(held) + len(done))
                if nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
                    continue
                if not held:
                    if exhausted and not done:
                        return
                    raise ExecutorError(f"internal: batch {nxt} is neither outstanding nor done")
                for index, outcome in self.wait():
                    self._settle(index, outcome, held, attempts, done, completions, counters)
        finally:
            self.stats = RunStats(nxt, counters["submitted"], counters["retries"], tuple(completions),
                                  counters["max_outstanding"])

    def _settle(self, index: int, outcome: R | BaseException, held: dict[int, P], attempts: dict[int, int],
                done: dict[int, R], completions: list[int], counters: dict[str, int]) -> None:
        """Accept one outcome: store a result once, resubmit a retryable failure, raise the rest."""
        if index not in held:
            raise ExecutorError(f"batch {index} came back but was not outstanding (duplicated or unknown); "
                                "its result is refused")
        if isinstance(outcome, BaseException):
            if self.retryable(outcome) and attempts[index] <= self.max_retries:
                attempts[index] += 1
                counters["retries"] += 1
                counters["submitted"] += 1
                self.submit(index, held[index], attempts[index])
                return
            if not self.retryable(outcome):
                raise outcome
            raise ExecutorError(f"batch {index} failed on all {attempts[index]} attempts (its worker died each "
                                f"time): {outcome}") from outcome
        completions[index] += 1
        done[index] = outcome
        del held[index]
