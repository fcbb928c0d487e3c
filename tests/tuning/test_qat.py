"""FakeQuantModel: its scores must equal the integer model's, bit for bit, before and after training.

Oracle: ``quantize_model(...).predict`` (which runs ``QuantizedModel.forward_int``).
Nothing here is statistical; every check is an exact equality.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.data import Dataset
from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.nn import Poly
from secquant.quant.calibration import MSEOptimal, Percentile, PerTensor, Symmetry
from secquant.quant.config import QuantConfig
from secquant.quant.primitives import Rounding
from secquant.tuning import qat as qat_module
from secquant.tuning.qat import FakeQuantModel
from secquant.tuning.train import TrainConfig, train
from tests.tuning.conftest import poly_cnn

CONFIGS = [
    QuantConfig(bits=4, input_range=(0.0, 1.0)),
    QuantConfig(bits=3),
    QuantConfig(bits=8, weight_method=Percentile(99.0)),
    QuantConfig(bits=5, weight_method=MSEOptimal(), input_bits=3, input_rounding=Rounding.FLOOR),
    QuantConfig(bits=6, weight_granularity=PerTensor(), input_symmetry=Symmetry.SYMMETRIC),
    QuantConfig(bits=4, layer_bits={"0": 3, "1": 6, "2": 7}, input_range=(-0.2, 0.9)),
]


def _scores(fq: FakeQuantModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fq(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.__repr__()[:60])
def test_scores_equal_the_integer_model_bit_for_bit(digits: Dataset, poly_mlp: nn.Module, cfg: QuantConfig) -> None:
    fq = FakeQuantModel(copy.deepcopy(poly_mlp), digits.x_train[:200], cfg)
    qm = secquant.quantize_model(fq.model, digits.x_train[:200], config=cfg)
    x = digits.x_test
    np.testing.assert_array_equal(_scores(fq, x), qm.predict(x))
    np.testing.assert_array_equal(fq.convert().predict(x), qm.predict(x))


def test_training_keeps_the_equality_and_learns(digits: Dataset, poly_mlp: nn.Module) -> None:
    model = copy.deepcopy(poly_mlp)
    cfg = QuantConfig(bits=3, input_range=(0.0, 1.0))
    fq = FakeQuantModel(model, digits.x_train[:200], cfg)
    before = [p.detach().clone() for p in model.parameters()]
    acc0 = float(np.mean(_scores(fq, digits.x_test).argmax(1) == digits.y_test))
    losses = train(fq, list(model.parameters()), digits.x_train, digits.y_train, TrainConfig(epochs=3, lr=1e-3),
                   modules=(model,))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model[1].coeffs.grad is not None  # learnable polynomial coefficients are trained too
    scores = _scores(fq, digits.x_test)
    np.testing.assert_array_equal(scores, fq.convert().predict(digits.x_test))
    assert float(np.mean(scores.argmax(1) == digits.y_test)) > acc0


def test_training_mode_forward_also_returns_the_exact_scores(digits: Dataset, poly_mlp: nn.Module) -> None:
    fq = FakeQuantModel(copy.deepcopy(poly_mlp), digits.x_train[:200], QuantConfig(bits=4))
    out = fq(torch.from_numpy(digits.x_test[:64]))
    assert out.requires_grad
    np.testing.assert_array_equal(out.detach().numpy(), fq.convert().predict(digits.x_test[:64]))


def test_conv_square_pool_poly_network_matches_before_and_after_training(digits: Dataset) -> None:
    x_tr, x_te = digits.images()
    model = poly_cnn()
    cfg = QuantConfig(bits=4, input_range=(0.0, 1.0))
    fq = FakeQuantModel(model, x_tr[:200], cfg)
    np.testing.assert_array_equal(_scores(fq, x_te), fq.convert().predict(x_te))
    train(fq, list(model.parameters()), x_tr[:400], digits.y_train[:400], TrainConfig(epochs=1, lr=1e-3),
          modules=(model,))
    np.testing.assert_array_equal(_scores(fq, x_te), fq.convert().predict(x_te))


def test_integers_past_2_63_stay_exact(digits: Dataset) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 16), Poly([0.1, 0.5, 0.3]), nn.Linear(16, 16), Poly([0.1, 0.5, 0.3]),
                          nn.Linear(16, 16), Poly([0.0, 0.5, 0.3]), nn.Linear(16, 10))
    cfg = QuantConfig(bits=8)
    fq = FakeQuantModel(model, digits.x_train[:100], cfg)
    qm = fq.convert()
    assert qm.bounds().output.max_abs > 2**63  # Python-int arithmetic in the integer model
    np.testing.assert_array_equal(_scores(fq, digits.x_test[:50]), qm.predict(digits.x_test[:50]))


def test_straight_through_gradient_of_a_linear_layer(digits: Dataset) -> None:
    """Known answer: dL/dW = g^T (v / s_in), the float gradient at the dequantized input."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10))
    fq = FakeQuantModel(model, digits.x_train[:100], QuantConfig(bits=6, input_range=(0.0, 1.0)))
    x = torch.from_numpy(digits.x_train[:32])
    scores = fq(x)
    g = torch.randn_like(scores)
    (scores * g).sum().backward()
    x_deq = fq.quantize_input(x) / fq.input_quant.scale
    expected = g.T @ torch.from_numpy(x_deq)
    torch.testing.assert_close(model[0].weight.grad.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[0].bias.grad.double(), g.sum(0), rtol=1e-5, atol=1e-6)


def test_clipped_weights_get_no_gradient(digits: Dataset) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10))
    with torch.no_grad():
        model[0].weight[0, 5] = 50.0  # an outlier that Percentile clipping saturates
    fq = FakeQuantModel(model, digits.x_train[:100], QuantConfig(bits=4, weight_method=Percentile(90.0)))
    fq(torch.from_numpy(digits.x_train[:16])).sum().backward()
    assert model[0].weight.grad[0, 5] == 0
    assert torch.count_nonzero(model[0].weight.grad[0]) > 0


def test_planted_half_even_input_rounding_is_caught(digits: Dataset, poly_mlp: nn.Module,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake-quant that rounds ties to even (torch.round) no longer matches: the equality test has teeth."""
    cfg = QuantConfig(bits=4, input_range=(0.25, 1.25))  # C = 15, d = -11: pixel 0.5 gives the tie -3.5
    fq = FakeQuantModel(copy.deepcopy(poly_mlp), digits.x_train[:200], cfg)
    expected = fq.convert().predict(digits.x_test)
    monkeypatch.setattr(qat_module, "round_values", lambda y, rounding: np.round(y))
    assert not np.array_equal(_scores(fq, digits.x_test), expected)


def test_bad_setups_are_refused(digits: Dataset, poly_mlp: nn.Module) -> None:
    x = digits.x_train[:50]
    with pytest.raises(ConfigError, match="deterministic input rounding"):
        FakeQuantModel(poly_mlp, x, QuantConfig(input_rounding=Rounding.STOCHASTIC))
    with pytest.raises(ConfigError, match="fold BatchNorm"):
        FakeQuantModel(nn.Sequential(nn.Linear(64, 4), nn.BatchNorm1d(4)), x)
    with pytest.raises(ConfigError, match="QuantConfig"):
        FakeQuantModel(poly_mlp, x, {"bits": 4})  # type: ignore[arg-type]
    with pytest.raises(UnsupportedLayerError, match="approximate_activations"):
        FakeQuantModel(nn.Sequential(nn.Linear(64, 4), nn.ReLU()), x)
    with pytest.raises(ConfigError, match="calibration"):
        FakeQuantModel(poly_mlp, np.zeros((0, 64)))
    fq = FakeQuantModel(poly_mlp, x)
    with pytest.raises(ConfigError, match="NaN"):
        fq(torch.full((2, 64), float("nan")))
