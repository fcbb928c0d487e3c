"""Whole batches on a Ray cluster: :class:`RayExecutor`; the secret key stays in this process.

* **Workers hold only the server role.**  One actor per worker; each builds
  server roles from :class:`~.recipe.ServerRecipe` bytes (model, options,
  public material; digest-checked), each ``ray.put`` once and shared by every
  actor.  Actors keep the roles of the last ``recipes`` recipes, so sessions
  that take turns (``secquant serve --executor``) reuse them.
* **The client stays here.**  :meth:`RayExecutor.run` encrypts each batch in
  this process just before submitting it and decrypts each result as it
  arrives; the cluster sees public material and ciphertexts only.
* **Backpressure.**  At most ``in_flight`` batches are outstanding (submitted
  and not yet handed back), so at most that many encrypted batches exist.
* **Retries.**  Actors restart when their process dies; a batch whose actor
  died is resubmitted (``max_retries`` times), and results are keyed by batch
  index, so nothing is lost or handed back twice.
* ``address="local"`` starts a cluster on this machine (``num_cpus``, no
  dashboard, every server bound to the loopback address); any other address
  (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``) connects to a running one.

Ray is imported only when an executor first connects (``pip install secquant[ray]``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from secquant.backends.base import ServerRole
from secquant.backends.executors.base import (
    BatchJob,
    BatchOutput,
    Evaluated,
    ExecutorError,
    RunStats,
    Window,
    check_count,
)
from secquant.backends.executors.pipeline import run_remote
from secquant.backends.executors.recipe import ServerRecipe
from secquant.errors import ConfigError

__all__ = ["RayExecutor", "ServerWorker"]

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class ServerWorker:
    """The body of one Ray actor: server roles built from recipe bytes; never a secret key.

    The actor keeps the roles of the ``capacity`` recipes it used last (by
    digest), so sessions that take turns do not rebuild them.  A recipe comes as
    a one-element list holding its object reference, which Ray hands over
    unresolved: the bytes are fetched only when the role must be built (first
    use, or after the actor restarted and lost its roles).

    Args:
        capacity: Server roles kept (>= 1).
    """

    def __init__(self, capacity: int = 1) -> None:
        self._servers: OrderedDict[str, ServerRole] = OrderedDict()
        self._capacity = max(1, int(capacity))
        self.builds = 0

    def ready(self) -> int:
        """The actor's process id."""
        return os.getpid()

    def _server(self, digest: str, recipe: list[Any]) -> ServerRole:
        server = self._servers.get(digest)
        if server is None:
            import ray

            built = ServerRecipe.from_bytes(ray.get(recipe[0]))
            if built.digest != digest:
                raise ExecutorError("the recipe's bytes do not have the digest they were sent under")
            server = built.build()
            self.builds += 1
            self._servers[digest] = server
            while len(self._servers) > self._capacity:
                self._servers.popitem(last=False)
        self._servers.move_to_end(digest)
        return server

    def prepare(self, digest: str, recipe: list[Any]) -> tuple[int, int]:
        """Build (or keep) the server role of a recipe; ``(process id, roles built so far)``."""
        self._server(digest, recipe)
        return os.getpid(), self.builds

    def build_count(self) -> int:
        """Server roles built since the actor started."""
        return self.builds

    def evaluate(self, index: int, payload: bytes, digest: str, recipe: list[Any]) -> tuple[int, bytes, float]:
        """``(index, encrypted result, seconds)`` of one encrypted batch under the recipe ``digest``."""
        server = self._server(digest, recipe)
        t0 = time.perf_counter()
        result = server.evaluate(payload)
        return index, result, time.perf_counter() - t0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("RayExecutor needs Ray: pip install 'secquant[ray]' (or use workers= / fork:N)") from exc
    return ray


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While a local cluster starts: bind its servers to the loopback address, not the node's address."""
    ray_constants: Any
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without the switch binds as it always did
        ray_constants = None
    old_env, old_flag = os.environ.get(_LOOPBACK_ENV), getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_LOOPBACK_ENV] = "0"
    if ray_constants is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = old_env
        if ray_constants is not None and old_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old_flag


class _RayWindow(Window[bytes, Evaluated]):
    """A :class:`Window` over the executor's actors: each batch to the least loaded live one.

    An actor whose task failed is *down* until a ``ready()`` probe answers (it
    restarts, or a fresh actor replaces one whose restarts ran out); batches go
    to live actors meanwhile, and wait for one when none is live.
    """

    def __init__(self, executor: RayExecutor, limit: int, max_retries: int, digest: str) -> None:
        super().__init__(limit, max_retries)
        self._ex = executor
        self._digest = digest
        self._ray = executor._ray
        self._refs: dict[Any, tuple[int, int, int]] = {}
        self._load = [0] * len(executor._actors)
        self._probes: dict[int, Any] = {}
        self._down_since: dict[int, float] = {}

    def _probe(self, slot: int, failure: BaseException | None = None) -> None:
        if isinstance(failure, self._ray.exceptions.ActorDiedError):  # restarts used up: a fresh actor
            self._ex._replace(slot)
        self._down_since.setdefault(slot, time.monotonic())
        self._probes[slot] = self._ex._actors[slot].ready.remote()

    def _poll(self, block: bool) -> None:
        """Bring back the down actors whose probe answered; re-probe the others."""
        refs = {ref: slot for slot, ref in self._probes.items()}
        ready, _ = self._ray.wait(list(refs), num_returns=1 if block else len(refs), timeout=None if block else 0)
        for ref in ready:
            slot = refs[ref]
            try:
                self._ray.get(ref)
            except self._ray.exceptions.RayActorError as exc:
                if time.monotonic() - self._down_since[slot] > self._ex.restart_timeout:
                    raise ExecutorError(f"Ray worker {slot} has not come back for {self._ex.restart_timeout:.0f} s: "
                                        f"{exc}") from exc
                if block:
                    time.sleep(0.1)
                self._probe(slot, exc)
                continue
            del self._probes[slot], self._down_since[slot]

    def submit(self, index: int, item: bytes, attempt: int) -> None:
        if self._probes:
            self._poll(block=False)
        while len(self._probes) == len(self._load):
            self._poll(block=True)
        slot = min((s for s in range(len(self._load)) if s not in self._probes), key=self._load.__getitem__)
        self._refs[self._ex._send(slot, index, item, self._digest)] = (index, slot, attempt)
        self._load[slot] += 1

    def wait(self) -> list[tuple[int, Evaluated | BaseException]]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        out: list[tuple[int, Evaluated | BaseException]] = []
        for ref in ready:
            index, slot, attempt = self._refs.pop(ref)
            self._load[slot] -= 1
            try:
                got_index, result, seconds = self._ray.get(ref)
            except self._ray.exceptions.RayTaskError as exc:  # the server role raised: the batch is bad
                out.append((index, exc.as_instanceof_cause()))
                continue
            except _lost(self._ray) as exc:
                if slot not in self._probes:
                    self._probe(slot, exc)
                out.append((index, exc))
                continue
            if got_index != index:
                raise ExecutorError(f"an actor returned batch {got_index} for batch {index}")
            out.append((index, Evaluated(index, result, float(seconds), attempt)))
        return out

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, _lost(self._ray))


def _lost(ray: Any) -> tuple[type[BaseException], ...]:
    """Errors that mean the worker (not the batch) failed: the batch may run again."""
    errors = ray.exceptions
    return errors.RayActorError, errors.ObjectLostError, errors.WorkerCrashedError


class RayExecutor:
    """Batches on a Ray cluster (see the module docstring).

    Args:
        address: ``"local"`` (start a cluster on this machine), ``"auto"`` (the
            cluster this machine belongs to), ``"host:port"`` (its GCS) or
            ``"ray://host:10001"`` (Ray Client).
        workers: Server actors; default: ``os.cpu_count()`` for ``"local"``, else
            the cluster's CPUs divided by ``cpus_per_worker``.
        in_flight: Most batches outstanding at once (default ``2 * workers``).
        max_retries: Resubmissions of a batch whose actor died (default 2).
        cpus_per_worker: CPUs each actor reserves (> 0; default 1).
        restart_timeout: Seconds a dead actor may take to come back before the
            stream fails (> 0; default 300).
        recipes: Server roles each actor keeps, the most recently used (>= 1;
            default 4): sessions that take turns do not rebuild them.

    Raises:
        ConfigError: a value out of range.
    """

    def __init__(self, address: str = "local", *, workers: int | None = None, in_flight: int | None = None,
                 max_retries: int = 2, cpus_per_worker: float = 1.0, restart_timeout: float = 300.0,
                 recipes: int = 4) -> None:
        if not isinstance(address, str) or not address:
            raise ConfigError(f"address must be 'local', 'auto', 'host:port' or 'ray://host:port', got {address!r}")
        self.address = address
        self._requested: int | None = None if workers is None else check_count(workers, "workers")
        self._in_flight = None if in_flight is None else check_count(in_flight, "in_flight")
        self.max_retries = check_count(max_retries, "max_retries", 0)
        if isinstance(cpus_per_worker, bool) or not isinstance(cpus_per_worker, (int, float)) or cpus_per_worker <= 0:
            raise ConfigError(f"cpus_per_worker must be a positive number, got {cpus_per_worker!r}")
        self.cpus_per_worker = float(cpus_per_worker)
        if isinstance(restart_timeout, bool) or not isinstance(restart_timeout, (int, float)) or restart_timeout <= 0:
            raise ConfigError(f"restart_timeout must be a positive number of seconds, got {restart_timeout!r}")
        self.restart_timeout = float(restart_timeout)
        self.recipes = check_count(recipes, "recipes")
        self._ray: Any = None
        self._owns_ray = False
        self._actors: list[Any] = []
        self._actor_class: Any = None
        self._recipe_refs: OrderedDict[str, Any] = OrderedDict()  # digest -> object reference, most recent last
        self.last_stats: RunStats | None = None

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, workers={self._requested})"

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workers(self) -> int:
        """Server actors (connects to the cluster to count them when not given)."""
        if self._requested is None:
            self._connect()
        return int(self._requested or 1)

    @property
    def in_flight(self) -> int:
        """Most batches outstanding at once."""
        return self._in_flight or 2 * self.workers

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
            if self.address == "local":
                cpus = self._requested or os.cpu_count() or 1
                with _loopback_only():
                    ray.init(address="local", num_cpus=max(1, round(cpus * self.cpus_per_worker)),
                             log_to_driver=False, **quiet)
            else:
                host = self.address.split("://")[-1].rsplit(":", 1)[0]
                local = host in ("localhost", "::1", "[::1]") or host.startswith("127.")
                try:  # a cluster bound to the loopback address is joined on it
                    with _loopback_only() if local else contextlib.nullcontext():
                        ray.init(address=self.address, logging_level=logging.WARNING)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise ExecutorError(
                        f"cannot connect to the Ray cluster at {self.address!r}: {exc}. ray:// needs "
                        "pip install 'ray[client]'; a cluster with token authentication needs RAY_AUTH_MODE=token "
                        "and its token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) here too") from exc
            self._owns_ray = True
        if self._requested is None:
            total = float(ray.cluster_resources().get("CPU", 1.0))
            self._requested = max(1, int(total // self.cpus_per_worker))
        self._ray = ray
        return ray

    def gcs_address(self) -> str:
        """The cluster's GCS address (``host:port``), for other drivers to connect to."""
        return str(self._connect().get_runtime_context().gcs_address)

    def start(self, recipe: ServerRecipe) -> list[int]:
        """Make sure every actor holds ``recipe``'s server role; their process ids.

        The recipe is ``ray.put`` once; the actors build its role unless they
        hold it already (they keep the last :attr:`recipes`).

        Raises:
            ExecutorError: an actor cannot build its server role (the message says why).
        """
        ray = self._connect()
        if not self._actors:
            self._actors = [self._spawn() for _ in range(self.workers)]
        if recipe.digest not in self._recipe_refs:
            self._recipe_refs[recipe.digest] = self._put(recipe.wire)
            while len(self._recipe_refs) > self.recipes:
                self._recipe_refs.popitem(last=False)
        self._recipe_refs.move_to_end(recipe.digest)
        box = [self._recipe_refs[recipe.digest]]
        try:
            return [int(pid) for pid, _ in ray.get([a.prepare.remote(recipe.digest, box) for a in self._actors])]
        except ray.exceptions.RayError as exc:
            self._end_actors()
            raise ExecutorError(f"a Ray worker could not build its server role: {exc}") from exc

    def builds(self) -> list[int]:
        """Server roles each actor has built since it started (call between streams)."""
        ray = self._connect()
        return [int(n) for n in ray.get([actor.build_count.remote() for actor in self._actors])]

    def worker_pids(self) -> list[int]:
        """Process ids of the current actors (call between streams)."""
        ray = self._connect()
        return [int(pid) for pid in ray.get([actor.ready.remote() for actor in self._actors])]

    # Everything this executor hands to Ray goes through _put, _spawn and _send.
    def _put(self, blob: bytes) -> Any:
        return self._ray.put(blob)

    def _spawn(self) -> Any:
        if self._actor_class is None:
            self._actor_class = self._ray.remote(ServerWorker)
        actor = self._actor_class.options(num_cpus=self.cpus_per_worker, max_restarts=-1, max_task_retries=0)
        return actor.remote(self.recipes)

    def _send(self, slot: int, index: int, payload: bytes, digest: str) -> Any:
        # through the object store, not inline in the task message (which Ray Client would warn about)
        return self._actors[slot].evaluate.remote(index, self._put(payload), digest, [self._recipe_refs[digest]])

    def _replace(self, slot: int) -> None:
        with contextlib.suppress(Exception):
            self._ray.kill(self._actors[slot])
        self._actors[slot] = self._spawn()

    def map_batches(self, recipe: ServerRecipe, payloads: Iterable[bytes]) -> Iterator[Evaluated]:
        """Evaluate encrypted payloads on the actors; results in input order (see the module docstring).

        Raises:
            ExecutorError: an actor cannot build its server role, or a batch failed on every attempt.
            ConfigError: a payload the server role refuses.
        """
        self.start(recipe)
        window = _RayWindow(self, self.in_flight, self.max_retries, recipe.digest)
        try:
            yield from window.stream(payloads)
        finally:
            self.last_stats = window.stats

    def run(self, job: BatchJob) -> Iterator[BatchOutput]:
        """Encrypt here, evaluate on the cluster, decrypt here; outputs in input order."""
        return run_remote(self, job)

    def _end_actors(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        self._recipe_refs.clear()

    def release(self) -> None:
        """End the actors (freeing their CPUs) but keep the Ray session; the next stream registers the
        actor class again and makes new actors."""
        if self._ray is not None:
            self._end_actors()
            self._actor_class = None

    def close(self) -> None:
        """End the actors, and the Ray session if this executor started it."""
        if self._ray is None:
            return
        self._end_actors()
        if self._owns_ray:
            self._ray.shutdown()
        self._ray, self._owns_ray, self._actor_class = None, False, None
