"""Artifacts and integer models written before graphs and requantization still read and compute the same.

Oracle: ``tests/quant/data/chain_v1.sqm`` and ``chain_v1.json`` were written by
the code of commit 92a1e70 (artifact version 1, chains only) running
``tests/quant/data/make_chain_v1.py``: the model, its integer inputs and the
outputs that code's ``forward_int`` gave.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from secquant import QuantizedModel, quantize_model
from secquant.artifact import read_artifact
from secquant.data import load_dataset

DATA = Path(__file__).parent / "data"


def _fixture() -> tuple[QuantizedModel, dict]:
    return QuantizedModel.load(DATA / "chain_v1.sqm"), json.loads((DATA / "chain_v1.json").read_text())


def test_version_1_chain_artifacts_load_and_compute_the_same(tmp_path: Path) -> None:
    assert read_artifact(DATA / "chain_v1.sqm", "secquant.QuantizedModel", (1,))[0] == 1
    qm, ref = _fixture()
    assert qm.is_chain and qm.modulus == ref["modulus"]
    np.testing.assert_array_equal(qm.forward_int(np.array(ref["xq"])).astype(object), np.array(ref["y"], dtype=object))
    again = QuantizedModel.load(qm.save(tmp_path / "v2.sqm"))  # rewritten as version 2
    assert read_artifact(tmp_path / "v2.sqm", "secquant.QuantizedModel", (2,))[0] == 2
    assert again.summary() == qm.summary()


def test_requantize_none_reproduces_the_old_integer_model_bit_for_bit() -> None:
    spec = importlib.util.spec_from_file_location("make_chain_v1", DATA / "make_chain_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the model the fixture was written from
    old, _ = _fixture()
    x_tr, _ = load_dataset("digits").images()
    new = quantize_model(module.model(), x_tr[:200], bits=6)  # requantize=None: today's exact model
    assert [n.name for n in new.nodes] == [n.name for n in old.nodes]
    for a, b in zip(new.nodes, old.nodes):
        assert a.op.kind == b.op.kind and a.op.attrs() == b.op.attrs()
        for key, value in a.op.arrays().items():
            np.testing.assert_array_equal(np.asarray(value, dtype=object), np.asarray(b.op.arrays()[key], dtype=object))
    assert new.modulus == old.modulus and new.input_quant == old.input_quant
    np.testing.assert_array_equal(new.output_scale, old.output_scale)
