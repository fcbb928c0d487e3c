"""Whole batches in parallel worker processes (THROUGHPUT mode, both roles local).

SEAL work does not speed up with threads on these machines, but separate
processes do: a batch of ``slots`` inputs is independent of every other
batch, so ``workers`` forked processes each run encrypt -> evaluate -> decrypt
on their own batches and return only the decrypted integers.

The workers are forked from the caller, so the client's secret key is never
serialized or written anywhere; it exists in the forked copies of the
caller's memory, which end with the pool.  Fork is what makes that possible,
so this needs a platform with the ``fork`` start method (Linux).
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import ClientRole, ServerRole, run_rounds
from secquant.errors import ConfigError

__all__ = ["run_batches"]

_ROLES: tuple[ClientRole, ServerRole] | None = None


def _one_batch(xq: NDArray[Any]) -> tuple[NDArray[Any], dict[str, float]]:
    from threadpoolctl import threadpool_limits

    if _ROLES is None:
        raise ConfigError("internal: a worker started without its roles")
    client, server = _ROLES
    with threadpool_limits(1):  # one BLAS thread per worker: the workers already fill the cores
        t0 = time.perf_counter()
        payload = client.encrypt(xq)
        t1 = time.perf_counter()
        result, rounds = run_rounds(client, server, payload)
        t2 = time.perf_counter()
        out = client.decrypt(result)
        t3 = time.perf_counter()
    return out, {"encrypt": t1 - t0, "evaluate": t2 - t1, "decrypt": t3 - t2, "rounds": float(rounds),
                 "request_bytes": float(len(payload)), "response_bytes": float(len(result))}


def run_batches(client: ClientRole, server: ServerRole, xq: NDArray[Any], batch: int,
                workers: int) -> tuple[NDArray[Any], dict[str, float]]:
    """Split ``xq`` into batches of ``batch`` inputs and run them in ``workers`` forked processes.

    Returns:
        The decrypted outputs in input order, and timings: ``wall`` seconds,
        ``batches``, and per-stage seconds summed over batches.

    Raises:
        ConfigError: ``workers`` < 1, or the platform cannot fork.
    """
    global _ROLES
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ConfigError("parallel batches need the 'fork' start method (Linux); use workers=1")
    chunks = [xq[i:i + batch] for i in range(0, len(xq), batch)]
    t0 = time.perf_counter()
    _ROLES = (client, server)
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(chunks))) as pool:
            results = pool.map(_one_batch, chunks, chunksize=1)
    finally:
        _ROLES = None
    timings: dict[str, float] = {"wall": time.perf_counter() - t0, "batches": float(len(chunks))}
    for _, t in results:
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
    return np.concatenate([out for out, _ in results]), timings
