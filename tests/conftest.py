"""Suite-wide settings: how pytest-xdist splits the suite over the machine's cores.

``scripts/test.sh`` runs ``pytest -n 2 --dist loadgroup``. Every test is put in
the group of its file, so a file's module and session fixtures (trained
models, compiled keys, servers) are built once, on one worker, as in a serial
run. The files that start a local Ray cluster share one group: two clusters
started at once on one machine would race for its ports and its object store.
"""

from __future__ import annotations

import pytest

#: Test files that start (or join) a local Ray cluster; they run one after another on one worker.
RAY_FILES = frozenset({"test_ray_executor.py", "test_membership_backends.py", "test_parallel.py"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::")[0]
        group = "ray" if path.rsplit("/", 1)[-1] in RAY_FILES else path
        item.add_marker(pytest.mark.xdist_group(group))
