"""``examples/circuit_privacy.py`` runs small as a user would run it.

Oracle: the example's own checks (both responses decode bit-exactly against
``forward_int``, the client's noise budget is positive) and its exit code; the
flood section must state its statistical guarantee. The auditor demonstration
(``--audit-samples``) is left to ``tests/backends/test_circuit_privacy.py``.
"""

from __future__ import annotations

import pytest

from tests.test_examples import run_example

pytest.importorskip("tenseal")


def test_circuit_privacy_example_runs_small() -> None:
    out = run_example("circuit_privacy.py", "--epochs", "5", "--inputs", "2", timeout=120)
    assert "both responses decode bit-exactly: True" in out
    assert '"method": "flood"' in out and "statistical distance 2**-40" in out
    assert "all checks passed" in out
