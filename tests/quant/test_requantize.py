"""Operation quantization: requantize ops keep every bound under a fixed budget, however deep.

Oracles: analytic bounds (a requantized tensor is within ±(2**(t-1) - 1)), the
loop reference ``naive_graph_forward`` for ``forward_int``, and the float model
for accuracy (argmax agreement on real held-out data; thresholds sit below
measured values stated in comments, on fixed seeds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from secquant import QuantizedModel, quantize_model
from secquant.data import load_dataset
from secquant.errors import ConfigError
from secquant.nn import Poly, Square
from secquant.quant.calibration import MinMax
from secquant.quant.config import QuantConfig
from secquant.quant.requantize import RangeSource, RequantizeAt, RequantizeConfig
from secquant.training import TrainOptions, train_classifier
from tests.quant.reference import naive_graph_forward


def _mlp(depth: int, width: int = 16, d_in: int = 30, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d_in, width)]
    for i in range(depth):
        layers += [Square() if i % 2 == 0 else Poly([0.0, 0.5, 0.1]), nn.Linear(width, width if i < depth - 1 else 2)]
    return nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer")


def _agreement(model: nn.Module, qm: QuantizedModel, x: np.ndarray) -> float:
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()
    return float(np.mean(qm.predict(x).argmax(1) == ref))


def test_the_issue_three_square_mlp_fits_a_small_modulus(cancer) -> None:
    """30→16→16→16→2 with three Squares needs ~206 bits exact; requantized, about 30, with the same predictions."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 16), Square(), nn.Linear(16, 16), Square(), nn.Linear(16, 16), Square(),
                          nn.Linear(16, 2))
    train_classifier(model, cancer.x_train, cancer.y_train, TrainOptions(epochs=30, lr=3e-3))
    exact = quantize_model(model, cancer.x_train, bits=8)
    assert exact.bounds().bits > 150  # measured 206
    qm = quantize_model(model, cancer.x_train, bits=8, requantize=RequantizeConfig())
    assert qm.bounds().bits <= 40  # measured 29
    assert _agreement(model, qm, cancer.x_test) >= 0.9  # measured 0.944 (an ill-conditioned x² network)


def test_bounds_stay_under_a_budget_however_deep(cancer) -> None:
    """With requantization the modulus stops growing with depth; without it, it doubles per Square."""
    rq = RequantizeConfig(target_bits=8)
    bits = []
    for depth in (2, 4, 6):
        model = _mlp(depth)
        qm = quantize_model(model, cancer.x_train, bits=8, requantize=rq)
        # a poly on 8-bit inputs with 8-bit coefficients, then 8-bit weights over 16 inputs: 16 + 7 + 8 + 4 + 1 bits
        assert all(b.bits <= 36 for b in qm.bounds().layers)  # measured 31
        rows = [b for b in qm.bounds().layers if b.kind == "requantize"]
        assert len(rows) == depth and all(b.max_abs <= 127 for b in rows)  # clipped to ±(2**7 - 1)
        bits.append(qm.bounds().bits)
    assert max(bits) <= 36  # the same budget at depth 2, 4 and 6 (measured 31, 33, 32)
    exact = [quantize_model(_mlp(d), cancer.x_train, bits=8).bounds().bits for d in (1, 2, 3)]
    assert exact[2] > exact[1] > exact[0] and exact[2] > 2 * bits[0]
    with pytest.raises(ConfigError, match="requantize"):  # 6 exact activations leave float64 scales behind
        quantize_model(_mlp(6), cancer.x_train, bits=8)


def test_six_activation_mlp_keeps_its_predictions(cancer) -> None:
    model = _mlp(6, seed=1)
    train_classifier(model, cancer.x_train, cancer.y_train, TrainOptions(epochs=20, lr=3e-3))
    qm = quantize_model(model, cancer.x_train, bits=8, requantize=RequantizeConfig())
    assert _agreement(model, qm, cancer.x_test) >= 0.95  # measured 0.986


def test_forward_int_matches_the_reference_with_zero_points_and_channels() -> None:
    """Asymmetric input (a zero point), per-channel conv requantization, a residual add, Python ints."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3 * 16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            h = h + self.b(h * h)
            return self.fc(torch.flatten(h * h, 1))

    torch.manual_seed(3)
    x = (torch.rand(64, 2, 4, 4) * 3 + 1).numpy()  # all positive: the input gets a zero point
    for rq in (RequantizeConfig(target_bits=6), RequantizeConfig(at="after_activation", range_from="proven"),
               RequantizeConfig(at=RequantizeAt.BUDGET, budget_bits=30, target_bits=7, method=MinMax())):
        qm = quantize_model(Net(), x, bits=7, requantize=rq)
        assert qm.input_quant.offset != 0 and any(n.op.kind == "requantize" for n in qm.nodes)
        rng = np.random.default_rng(0)
        corners = np.where(rng.random((3, *qm.input_shape)) < 0.5, qm.input_quant.lo, qm.input_quant.hi)
        xq = np.concatenate([qm.quantize_input(x[:5]), corners])
        np.testing.assert_array_equal(qm.forward_int(xq).astype(object), naive_graph_forward(qm.graph, xq))
        values = qm.forward_all(xq)
        for b in qm.bounds().layers:
            assert np.all(values[b.name] >= b.lo.astype(object)) and np.all(values[b.name] <= b.hi.astype(object))
        if rq.at is RequantizeAt.BUDGET:
            assert all(b.bits <= 30 for b in qm.bounds().layers)


def test_proven_range_never_clips_and_calibrated_range_is_finer(cancer) -> None:
    model = _mlp(2, seed=2)
    train_classifier(model, cancer.x_train, cancer.y_train, TrainOptions(epochs=20, lr=3e-3))
    proven = quantize_model(model, cancer.x_train, requantize=RequantizeConfig(range_from=RangeSource.PROVEN))
    calibrated = quantize_model(model, cancer.x_train, requantize=RequantizeConfig())
    report = proven.bounds()
    for node in proven.nodes:
        if node.op.kind == "requantize":
            src = next(b for b in report.layers if b.name == node.inputs[0])
            assert not node.op.saturates(src.lo, src.hi)
    saturating = [n for n in calibrated.nodes if n.op.kind == "requantize"]
    src = {b.name: b for b in calibrated.bounds().layers}
    assert any(n.op.saturates(src[n.inputs[0]].lo, src[n.inputs[0]].hi) for n in saturating)
    assert _agreement(model, calibrated, cancer.x_test) >= _agreement(model, proven, cancer.x_test)


def test_requantize_ops_show_in_the_table_and_survive_save_load(tmp_path, cancer) -> None:
    qm = quantize_model(_mlp(3), cancer.x_train, bits=8, requantize=RequantizeConfig())
    table = qm.bounds().table()
    rows = [line.split() for line in table.splitlines() if "requantize" in line]
    assert [r[:2] for r in rows] == [[f"{k}.requantize", "requantize"] for k in (0, 2, 4)]  # before each activation
    assert all(int(r[3]) <= 2**9 - 1 for r in rows)  # max |int| of a 10-bit requantized tensor
    loaded = QuantizedModel.load(qm.save(tmp_path / "rq.sqm"))
    xq = qm.quantize_input(cancer.x_test)
    np.testing.assert_array_equal(loaded.forward_int(xq), qm.forward_int(xq))
    assert loaded.config["requantize"] == RequantizeConfig().to_dict()


def test_config_is_typed_and_validated() -> None:
    assert RequantizeConfig(at="budget", budget_bits=40).at is RequantizeAt.BUDGET
    for bad in ({"target_bits": 1}, {"at": "sometimes"}, {"at": "budget"}, {"budget_bits": 40},
                {"at": "budget", "budget_bits": 8}, {"multiplier_bits": 40}, {"headroom": 0.5},
                {"range_from": "guess"}, {"method": "minmax"}):
        with pytest.raises(ConfigError):
            RequantizeConfig(**bad)
    with pytest.raises(ConfigError, match="RequantizeConfig"):
        QuantConfig(requantize={"target_bits": 8})  # type: ignore[arg-type]
    cfg = RequantizeConfig(target_bits=9, at="after_activation", headroom=1.5)
    assert RequantizeConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
