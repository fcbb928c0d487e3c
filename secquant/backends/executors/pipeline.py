"""The client side of a batch stream: encrypt here, evaluate on an executor, decrypt here.

:func:`run_remote` is :meth:`Executor.run` for executors whose workers hold
only the server role (Ray): the client role encrypts each batch in this
process just before it is submitted (so at most ``in_flight`` encrypted
batches exist at once) and decrypts each result as it comes back.
:func:`run_on` is what ``EncryptedModel.forward_int(xq, executor=...)`` calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import ClientRole, ServerRole
from secquant.backends.executors.base import BatchJob, BatchOutput, Executor, ExecutorError
from secquant.backends.executors.recipe import ServerRecipe
from secquant.errors import ConfigError

__all__ = ["run_on", "run_remote"]


def run_remote(executor: Executor, job: BatchJob) -> Iterator[BatchOutput]:
    """Encrypt and decrypt in this process, evaluate with ``executor.map_batches``.

    Raises:
        ConfigError: the scheme needs another round (interactive): the client
            must answer between rounds, which a stream of whole batches does not do.
    """
    sent: dict[int, tuple[float, int]] = {}

    def payloads() -> Iterator[bytes]:
        for i, xq in enumerate(job.inputs):
            t0 = time.perf_counter()
            payload = job.client.encrypt(xq)
            sent[i] = (time.perf_counter() - t0, len(payload))
            yield payload

    for ev in executor.map_batches(job.recipe(), payloads()):
        if job.client.next_request(ev.result) is not None:
            raise ConfigError("this model needs interactive rounds (the client answers between them); run it with "
                              "workers= or without an executor")
        t0 = time.perf_counter()
        out = job.client.decrypt(ev.result)
        encrypt, request = sent.pop(ev.index)
        yield BatchOutput(ev.index, out, {"encrypt": encrypt, "evaluate": ev.seconds,
                                          "decrypt": time.perf_counter() - t0, "rounds": 1.0,
                                          "request_bytes": float(request), "response_bytes": float(len(ev.result))})


def run_on(executor: Executor, client: ClientRole, server: ServerRole, recipe: Callable[[], ServerRecipe],
           xq: NDArray[Any], batch: int) -> tuple[NDArray[Any], dict[str, float]]:
    """Split ``xq`` into batches of ``batch`` inputs, run them on ``executor``, reassemble in order.

    Returns:
        The outputs in input order, and timings: ``wall`` seconds, ``batches``,
        ``retries``, ``workers``, and per-stage seconds and bytes summed over batches.

    Raises:
        ConfigError: ``executor`` is not an :class:`Executor`, or ``xq`` is empty.
        ExecutorError: a batch is missing, duplicated or out of order.
    """
    if not isinstance(executor, Executor):
        raise ConfigError(f"executor must be an Executor (LocalExecutor, RayExecutor, executor_from_url(...)), "
                          f"got {type(executor).__name__}")
    chunks = [xq[i:i + batch] for i in range(0, len(xq), batch)]
    if not chunks:
        raise ConfigError("no inputs: an executor runs at least one input")
    t0 = time.perf_counter()
    outs: list[NDArray[Any]] = []
    timings: dict[str, float] = {}
    for expected, got in enumerate(executor.run(BatchJob(client, server, recipe, chunks))):
        if got.index != expected or len(got.output) != len(chunks[expected]):
            raise ExecutorError(f"batch {got.index} ({len(got.output)} outputs) came back where batch {expected} "
                                f"({len(chunks[expected])} inputs) belongs")
        outs.append(got.output)
        for k, v in got.timings.items():
            timings[k] = timings.get(k, 0.0) + float(v)
    if len(outs) != len(chunks):
        raise ExecutorError(f"{len(outs)} of {len(chunks)} batches came back")
    stats = executor.last_stats
    timings.update({"wall": time.perf_counter() - t0, "batches": float(len(chunks)), "workers": float(executor.workers),
                    "retries": float(stats.retries if stats else 0)})
    return np.concatenate(outs), timings
