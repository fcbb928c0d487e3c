"""The core install (no extras) quantizes, bounds and runs the plain reference without loading any extra.

Runs in a fresh interpreter, so nothing another test imported can hide an
import.  ``tenseal``, ``phe``, ``fastapi`` and ``ray`` (and the other heavy
extras) are installed in the test environment, so a stray import of one would
show up in ``sys.modules``: that is what this checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tenseal", "phe", "gmpy2", "fastapi", "uvicorn", "ray", "opacus", "matplotlib", "cryptography", "sklearn")

CODE = f"""
import json, sys
import numpy as np
import torch
import secquant
from secquant.nn import Square

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 4), Square(), torch.nn.Linear(4, 3))
x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
qm = secquant.quantize_model(model, x, bits=6)
table = qm.bounds().table()
em = secquant.compile(qm, "plain")
xq = qm.quantize_input(x[:5])
ref = np.asarray(qm.forward_int(xq))
plain = np.asarray(em.forward_int(xq))
from secquant.backends.executors import LocalExecutor
forked = np.asarray(em.forward_int(xq, executor=LocalExecutor(2)))
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"plain": plain.tolist(), "forked": forked.tolist(), "ref": ref.tolist(), "heavy": heavy,
                  "bounds_rows": len(table.splitlines())}}))
"""


def test_quantize_bounds_and_plain_run_load_no_extra() -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["plain"] == got["ref"] and got["forked"] == got["ref"] and len(got["ref"]) == 5
    assert got["bounds_rows"] >= 3


def test_the_check_sees_a_heavy_import() -> None:
    """Planted: importing ray makes the same check fail, so an empty list means something."""
    code = CODE.replace("heavy = sorted", "import ray\nheavy = sorted")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["heavy"] == ["ray"]
