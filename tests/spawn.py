"""Run a test's heavy body in a freshly spawned process.

SEAL's memory pool never returns memory to the system, so a test that holds
gigabytes of keys (N=32768) would keep that peak in its pytest worker for the
rest of the session.  :func:`in_spawned_process` runs ``fn(*args)`` in a new
interpreter (``spawn``, not ``fork``: nothing of the worker's pool is copied)
and returns its picklable result; the child's memory goes with it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["in_spawned_process"]

T = TypeVar("T")


def in_spawned_process(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a spawned process (``fn`` importable at module level; result picklable)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)
