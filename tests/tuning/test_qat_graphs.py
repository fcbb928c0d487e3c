"""FakeQuantModel on requantized models and on graphs: scores equal the integer model's, bit for bit.

Oracle: ``quantize_model(...).predict`` (which runs ``QuantizedModel.forward_int``),
before and after training.  Every check is an exact equality.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import secquant
from secquant.data import Dataset
from secquant.nn import Poly, Square
from secquant.quant.config import QuantConfig
from secquant.quant.requantize import RequantizeAt, RequantizeConfig
from secquant.tuning.qat import FakeQuantModel
from secquant.tuning.train import TrainConfig, train
from tests.tuning.conftest import poly_cnn


def _scores(fq: FakeQuantModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fq(torch.from_numpy(x)).numpy()


def _deep_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 24), Square(), nn.Linear(24, 24), Poly([0.1, 0.5, 0.2], learnable=True),
                         nn.Linear(24, 24), Square(), nn.Linear(24, 24), Square(), nn.Linear(24, 10))


def test_requantized_mlp_matches_before_and_after_training(digits: Dataset) -> None:
    model = _deep_mlp()
    for rq in (RequantizeConfig(target_bits=6), RequantizeConfig(at=RequantizeAt.AFTER_ACTIVATION, target_bits=7),
               RequantizeConfig(at="budget", budget_bits=28, target_bits=6)):
        cfg = QuantConfig(bits=5, input_range=(0.0, 1.0), requantize=rq)
        fq = FakeQuantModel(copy.deepcopy(model), digits.x_train[:300], cfg)
        qm = secquant.quantize_model(fq.model, digits.x_train[:300], config=cfg)
        assert sum(n.op.kind == "requantize" for n in qm.nodes) >= 2
        np.testing.assert_array_equal(_scores(fq, digits.x_test), qm.predict(digits.x_test))
    train(fq, list(fq.model.parameters()), digits.x_train, digits.y_train, TrainConfig(epochs=1, lr=1e-3),
          modules=(fq.model,))
    np.testing.assert_array_equal(_scores(fq, digits.x_test), fq.convert().predict(digits.x_test))


def test_requantized_cnn_with_an_asymmetric_input(digits: Dataset) -> None:
    x_tr, x_te = digits.images()
    cfg = QuantConfig(bits=4, requantize=RequantizeConfig(target_bits=5))  # calibrated input range: a zero point
    fq = FakeQuantModel(poly_cnn(), x_tr[:200], cfg)
    qm = fq.convert()
    assert qm.input_quant.offset != 0 and any(n.op.kind == "requantize" for n in qm.nodes)
    np.testing.assert_array_equal(_scores(fq, x_te), qm.predict(x_te))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.side = nn.Linear(48, 8)
        self.fc = nn.Linear(48 + 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        h = h + self.conv2(h * h)
        pooled = torch.flatten(F.avg_pool2d(h, 2), 1)
        return self.fc(torch.cat([pooled, self.side(pooled) * 0.5], dim=1))


def test_graph_models_match_with_and_without_requantization(digits: Dataset) -> None:
    x_tr, x_te = digits.images()
    torch.manual_seed(2)
    model = Residual()
    for rq in (None, RequantizeConfig(target_bits=6)):
        cfg = QuantConfig(bits=5, input_range=(0.0, 1.0), requantize=rq)
        fq = FakeQuantModel(model, x_tr[:200], cfg)
        qm = fq.convert()
        assert not qm.is_chain
        np.testing.assert_array_equal(_scores(fq, x_te[:100]), qm.predict(x_te[:100]))
    train(fq, list(model.parameters()), x_tr[:300], digits.y_train[:300], TrainConfig(epochs=1, lr=1e-3),
          modules=(model,))
    np.testing.assert_array_equal(_scores(fq, x_te[:100]), fq.convert().predict(x_te[:100]))
