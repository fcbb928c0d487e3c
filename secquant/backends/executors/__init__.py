"""Where whole batches run: forked processes on this machine, or a Ray cluster.

* :mod:`.base`: the :class:`Executor` protocol (``map_batches`` for payloads,
  ``run`` for the whole round trip), :class:`Window` (in-order results,
  bounded in-flight, retries keyed by batch index), :class:`ExecutorError`;
* :mod:`.recipe`: :class:`ServerRecipe`, the bytes a remote worker builds its
  server role from (never a secret key);
* :mod:`.local`: :class:`LocalExecutor` (what ``workers=N`` uses);
* :mod:`.ray`: :class:`RayExecutor` (``address="local"`` or a cluster);
* :mod:`.url`: :func:`executor_from_url` (``"fork:2"``, ``"local"``, ``"ray://host:10001"``).

``em.forward_int(xq, executor=...)`` runs its batches on one.  Names load
lazily; Ray is imported only when a :class:`RayExecutor` connects.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["BatchJob", "BatchOutput", "Evaluated", "Executor", "ExecutorError", "LocalExecutor", "RayExecutor",
           "RunStats", "ServerRecipe", "executor_from_url"]

__getattr__ = lazy_getattr(__name__, {
    "BatchJob": ".base", "BatchOutput": ".base", "Evaluated": ".base", "Executor": ".base",
    "ExecutorError": ".base", "RunStats": ".base", "LocalExecutor": ".local", "RayExecutor": ".ray",
    "ServerRecipe": ".recipe", "executor_from_url": ".url",
})
