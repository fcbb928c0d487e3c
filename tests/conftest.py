"""Suite-wide settings: how pytest-xdist splits the suite over the machine's cores.

``scripts/test.sh`` runs ``pytest -n 2 --dist loadgroup``. Every test is put in
the group of its file, so a file's module and session fixtures (trained
models, compiled keys, servers) are built once, on one worker, as in a serial
run. The files that start a local Ray cluster share one group: two clusters
started at once on one machine would race for its ports and its object store.

With ``SECQUANT_RSS_LOG=path``, every test appends ``pid peak_kB rss_kB nodeid``
to ``path`` after it runs (``peak`` is the process's peak so far): the line where
a worker's peak rises names the test that raised it (issue 15's memory work).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest

#: Test files that start (or join) a local Ray cluster; they run one after another on one worker.
RAY_FILES = frozenset({"test_ray_executor.py", "test_membership_backends.py", "test_parallel.py",
                       "test_service_executor.py"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::")[0]
        group = "ray" if path.rsplit("/", 1)[-1] in RAY_FILES else path
        item.add_marker(pytest.mark.xdist_group(group))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)


@pytest.fixture(autouse=True)
def _rss_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Log each test's memory when ``SECQUANT_RSS_LOG`` names a file (see the module docstring)."""
    yield
    path = os.environ.get("SECQUANT_RSS_LOG")
    if path:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {peak} {_rss_kb()} {request.node.nodeid}\n")
