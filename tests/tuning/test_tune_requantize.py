"""tune() searches over requantization: a deep model meets a modulus budget only when requantized.

Oracle: analytic (the exact model's proven modulus, computed independently,
passes the budget; a requantized trial's modulus is ``qm.modulus_needed`` of
the model tune returns).
"""

from __future__ import annotations

import torch
from torch import nn

import secquant
from secquant.data import Dataset
from secquant.nn import Square
from secquant.quant.calibration import MinMax
from secquant.quant.requantize import RequantizeConfig
from secquant.tuning import MaxModulusBits, SearchSpace, tune


def test_tune_picks_the_requantized_configuration_under_a_modulus_budget(digits: Dataset) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 16), Square(), nn.Linear(16, 16), Square(),
                          nn.Linear(16, 10)).eval()
    exact_bits = secquant.quantize_model(model, digits.x_train[:200], bits=6).bounds().bits
    assert exact_bits > 60  # measured ~120
    rq = RequantizeConfig(target_bits=6)
    space = SearchSpace(bits=(6,), weight_methods=(MinMax(),), requantize=(None, rq), per_layer=False)
    result = tune(model, digits.x_train[:200], (digits.x_test[:200], digits.y_test[:200]), MaxModulusBits(40),
                  space=space)
    assert [t.config.requantize for t in result.trials] == [None, rq]
    assert not result.trials[0].meets and result.trials[1].meets
    assert result.best.config.requantize == rq and "requantize=6b@before_activation" in result.best.describe()
    assert result.model.modulus_needed == result.best.modulus and result.model.bounds().bits <= 40
    assert any(n.op.kind == "requantize" for n in result.model.nodes)
