"""The conformance matrix's deepest cells: the six-activation MLP, LeNet-5 and the small ResNet under CKKS
latency, one input each.

Same oracle as ``tests/test_conformance.py``: on every input that no requantize
op clips, each decrypted integer lies within ``parameters()["max_abs_error_int"]``
of ``qm.forward_int``, and the argmax agrees (the one input is the one of the
first 50 whose two top integer scores are furthest apart: a single near-tie
input can flip within the bound, and 99 % agreement is not a statement about
one input).  Each cell runs in a freshly
spawned process: it holds N=32768 keys (about 1-2 GB), and SEAL's memory pool
never returns memory to the system, so a cell run inside the test worker would
keep its peak for the rest of the session.  The bound is six-sigma and
encryption is randomized: a cell fails falsely with probability far below 1e-6.
LeNet-5 and the ResNet take a minute or more each (training at the conformance
sizes, key generation, one encrypted image; marked slow); ``bench/model_zoo.py``
measures them at full size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from secquant.models import ZooName
from tests.spawn import in_spawned_process

pytest.importorskip("tenseal")

#: The (model, scheme) pairs this file covers for the matrix of ``tests/test_conformance.py``.
DEEP_CELLS = ((ZooName.DEEP_MLP, "ckks"), (ZooName.LENET5, "ckks"), (ZooName.RESNET, "ckks"))
#: Minutes-long cells (LeNet-5, the ResNet): marked slow, run in CI.
SLOW = {ZooName.LENET5, ZooName.RESNET}


def _cell(name: str) -> dict[str, Any]:
    """Train, quantize (requantized), compile CKKS latency, run one test input: what the parent checks."""
    import torch

    import secquant
    from secquant.quant.lowering import clipped
    from tests.conformance.zoo import Quant, quantize, trained

    torch.set_num_threads(1)
    t = trained(ZooName(name))
    qm = quantize(t, Quant.REQUANT)
    candidates = qm.quantize_input(t.x_test[:50])
    scores = np.sort(np.asarray(qm.forward_int(candidates), dtype=np.float64), axis=1)
    margin = (scores[:, -1] - scores[:, -2]) / np.maximum(np.abs(scores).max(axis=1), 1.0)
    xq = candidates[[int(np.argmax(margin))]]  # one input, no near-tie: its argmax must not flip
    em = secquant.compile(qm, "ckks", mode="latency")
    params = em.parameters()
    return {"out": np.asarray(em.forward_int(xq)), "ref": np.asarray(qm.forward_int(xq)),
            "inside": ~clipped(qm, xq), "bound": params["max_abs_error_int"], "N": params["poly_degree"],
            "keys": params["galois_key_policy"], "completed": [s for s in params["stages"] if "completed_square" in s]}


@pytest.mark.parametrize("name", [pytest.param(m.value, marks=[pytest.mark.slow] if m in SLOW else [])
                                  for m, _ in DEEP_CELLS])
def test_deep_ckks_cell(name: str) -> None:
    r = in_spawned_process(_cell, name)
    out, ref = r["out"].astype(np.float64), r["ref"].astype(np.float64)
    assert out.shape == ref.shape
    diff = np.abs(out - ref)[r["inside"]]
    assert float(np.max(diff, initial=0.0)) <= r["bound"], (name, float(np.max(diff, initial=0.0)), r["bound"])
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    assert r["N"] <= 32768
    if ZooName(name) in SLOW:  # their degree-2 activations each cost one level (completed squares)
        assert r["completed"], r
