"""Whole batches in forked worker processes: kept for callers of :func:`run_batches`.

The implementation lives in :mod:`secquant.backends.executors.local`
(:class:`~secquant.backends.executors.local.LocalExecutor`, what
``em.forward_int(xq, workers=N)`` uses); Ray clusters are in
:mod:`secquant.backends.executors.ray`.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from secquant.backends.base import ClientRole, ServerRole
from secquant.backends.executors.base import check_count
from secquant.errors import ConfigError

__all__ = ["run_batches"]


def run_batches(client: ClientRole, server: ServerRole, xq: NDArray[Any], batch: int,
                workers: int) -> tuple[NDArray[Any], dict[str, float]]:
    """Split ``xq`` into batches of ``batch`` inputs and run them in ``workers`` forked processes.

    Returns:
        The decrypted outputs in input order, and timings: ``wall`` seconds,
        ``batches``, ``retries``, ``workers``, and per-stage seconds summed over batches.

    Raises:
        ConfigError: ``workers`` < 1, or the platform cannot fork.
    """
    from secquant.backends.executors.local import LocalExecutor
    from secquant.backends.executors.pipeline import run_on

    check_count(workers, "workers")

    def no_recipe() -> Any:
        raise ConfigError("internal: forked workers inherit their roles and need no recipe")

    return run_on(LocalExecutor(workers), client, server, no_recipe, xq, batch)
