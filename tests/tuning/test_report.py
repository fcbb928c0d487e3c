"""accuracy_breakdown: every stage scored against its own oracle.

Oracles: ``qm.predict`` for the quantized stage, ``centered_lift(forward_int, p)``
for the modular stage, and the plain (mod p) backend, which must agree with the
modular stage on every example.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import secquant
from secquant.data import Dataset
from secquant.errors import ConfigError
from secquant.quant.config import QuantConfig
from secquant.training import accuracy
from secquant.tuning import accuracy_breakdown
from secquant.tuning.report import Stage, StageStatus


@pytest.fixture(scope="module")
def qm(digits: Dataset, poly_mlp: nn.Module) -> secquant.QuantizedModel:
    return secquant.quantize_model(poly_mlp, digits.x_train[:300], config=QuantConfig(bits=4, input_range=(0.0, 1.0)))


def test_stages_in_order_with_their_oracles(digits: Dataset, relu_mlp: nn.Module, poly_mlp: nn.Module,
                                            qm: secquant.QuantizedModel) -> None:
    x, y = digits.x_test, digits.y_test
    rep = accuracy_breakdown(qm, x, y, float_model=relu_mlp, poly_model=poly_mlp, encrypted=8, scheme="plain")
    assert [r.stage for r in rep.stages] == list(Stage)
    assert rep[Stage.FLOAT].accuracy == accuracy(relu_mlp, x, y)
    assert rep["polynomial"].accuracy == accuracy(poly_mlp, x, y)
    assert rep[Stage.QUANTIZED].accuracy == accuracy(qm.predict, x, y)
    assert rep[Stage.MODULAR].accuracy == rep[Stage.QUANTIZED].accuracy and rep[Stage.MODULAR].agreement == 1.0
    enc = rep[Stage.ENCRYPTED]
    assert enc.status is StageStatus.RUN and enc.n == 8 and enc.agreement == 1.0
    table = rep.table()
    assert all(s.value in table for s in Stage)
    assert rep.to_dict()["stages"][4]["n"] == 8 and rep.modulus == qm.modulus


def test_a_too_small_modulus_shows_the_wraparound_loss(digits: Dataset, qm: secquant.QuantizedModel) -> None:
    x, y = digits.x_test, digits.y_test
    p = 2 ** ((qm.modulus_needed.bit_length()) - 6)
    rep = accuracy_breakdown(qm, x, y, modulus=p)
    lifted = secquant.centered_lift(qm.forward_int(qm.quantize_input(x)), p)
    expected = float(np.mean(np.argmax(qm.dequantize_output(np.asarray(lifted, np.float64)), 1) == y))
    assert rep[Stage.MODULAR].accuracy == expected < rep[Stage.QUANTIZED].accuracy
    assert "wraps" in rep[Stage.MODULAR].note


def test_stages_that_cannot_run_say_why(digits: Dataset, qm: secquant.QuantizedModel) -> None:
    rep = accuracy_breakdown(qm, digits.x_test, digits.y_test)
    assert rep[Stage.FLOAT].status is StageStatus.NOT_RUN and "no model" in rep[Stage.FLOAT].note
    assert rep[Stage.ENCRYPTED].status is StageStatus.NOT_RUN and "encrypted=0" in rep[Stage.ENCRYPTED].note
    assert "not run" in rep.table()
    rep = accuracy_breakdown(qm, digits.x_test[:4], digits.y_test[:4], encrypted=2, scheme="no-such-scheme")
    assert rep[Stage.ENCRYPTED].status is StageStatus.FAILED and "scheme" in rep[Stage.ENCRYPTED].note


def test_bad_arguments(digits: Dataset, qm: secquant.QuantizedModel) -> None:
    x, y = digits.x_test, digits.y_test
    with pytest.raises(ConfigError, match="QuantizedModel"):
        accuracy_breakdown(object(), x, y)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="as many labels"):
        accuracy_breakdown(qm, x, y[:5])
    with pytest.raises(ConfigError, match="modulus"):
        accuracy_breakdown(qm, x, y, modulus=1)
    with pytest.raises(ConfigError, match="encrypted"):
        accuracy_breakdown(qm, x, y, encrypted=-1)
