"""examples/class_based_model.py runs small, as a new user would run it (docs/models.md walks through it)."""

from __future__ import annotations

import re

from tests.test_examples import run_example


def test_class_based_model_example_runs_small() -> None:
    out = run_example("class_based_model.py", "--data", "digits", "--limit", "400", "--test-limit", "100",
                      "--epochs", "3", "--bits", "8", "--target-bits", "10")
    assert "forward_int identical: True" in out and "reloaded model identical: True" in out
    exact = int(re.search(r"exact\s+[\d.]+\s+modulus (\d+) bits\s+graph: DAG", out).group(1))
    requantized = int(re.search(r"requantized\s+[\d.]+\s+modulus (\d+) bits\s+graph: DAG", out).group(1))
    assert requantized < exact  # the residual network is a graph, and requantization shrinks its modulus
    assert re.search(r"\bstem\.requantize\s+requantize\b", out)  # the bounds table shows the requantize ops
    assert re.search(r"\badd\s+add\s.*\brelu_fn, block\.conv2\s*$", out, re.MULTILINE)  # and the residual add, reading two
