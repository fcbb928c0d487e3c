"""Models as people write them: class-based modules, residual blocks, concatenation, functional calls.

Oracles: an independent loop evaluator in Python ints (``naive_graph_forward``)
for ``forward_int``, and the float model itself for ``predict`` (scores within
a stated fraction of the logit spread at 8 bits; measured values in comments).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from secquant import quantize_model
from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.nn import Poly, Square, approximate_activations
from secquant.quant.dag import GraphModelError
from tests.quant.reference import naive_graph_forward


def _corners(qm, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    iq = qm.input_quant
    return np.where(rng.random((n, *qm.input_shape)) < 0.5, iq.lo, iq.hi).astype(np.int64)


def _check(model: nn.Module, x: np.ndarray, tolerance: float = 0.03, bits: int = 8):
    """Quantize; forward_int equals the loop reference; predict tracks the float model within ``tolerance``."""
    model.eval()
    qm = quantize_model(model, x, bits=bits)
    xq = np.concatenate([qm.quantize_input(x[:4]), _corners(qm, 3, 0)])
    np.testing.assert_array_equal(qm.forward_int(xq).astype(object), naive_graph_forward(qm.graph, xq))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    err = np.abs(qm.predict(x) - ref).max()
    assert err < tolerance * np.ptp(ref), (err, np.ptp(ref))
    return qm


class ReluNet(nn.Module):
    """The issue's first failure: a class with ReLU modules, approximated, then quantized."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.act = nn.ReLU()
        self.fc1 = nn.Linear(108, 16)
        self.act2 = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x))
        return self.fc2(self.act2(self.fc1(torch.flatten(h, 1))))


def test_class_based_model_after_approximate_activations() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    poly = approximate_activations(ReluNet(), 2, calibration=x)
    assert isinstance(poly, ReluNet) and isinstance(poly.act, Poly)
    qm = _check(poly, x.numpy())  # measured error ~0.4% of the spread
    assert [n.op.kind for n in qm.nodes] == ["conv2d", "poly", "flatten", "linear", "poly", "linear"]
    assert qm.is_chain


def test_functional_activations_are_approximated_through_the_fx_graph() -> None:
    torch.manual_seed(1)
    x = torch.rand(64, 1, 8, 8)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(64, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.avg_pool2d(F.relu(self.conv(x)), 2)
            return torch.tanh(self.fc(h.view(h.size(0), -1)))

    poly = approximate_activations(Net(), 3, calibration=x)
    assert sum(isinstance(m, Poly) for m in poly.modules()) == 2
    _check(poly, x.numpy())


def test_functional_calls_have_integer_forms() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            h = F.avg_pool2d(h * h, 2, padding=1, count_include_pad=False)  # uneven border windows
            h = F.adaptive_avg_pool2d(h, 2)
            return self.fc(h.reshape(-1, 16) * 2.0 - 1.0)

    torch.manual_seed(2)
    qm = _check(Net(), torch.rand(64, 1, 6, 6).numpy())
    kinds = [n.op.kind for n in qm.nodes]
    assert kinds[:4] == ["conv2d", "square", "sumpool2d", "scale"] and "flatten" in kinds


def test_global_average_pooling_and_refused_uneven_adaptive_pooling() -> None:
    torch.manual_seed(3)
    x = torch.rand(32, 1, 8, 8).numpy()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), Square(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    _check(model, x)
    mean_model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), Square(), nn.AdaptiveAvgPool2d((2, 4)), nn.Flatten(),
                               nn.Linear(32, 3))
    _check(mean_model, x)
    with pytest.raises(ConfigError, match="divide the input"):
        quantize_model(nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(9, 2)), x)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride) if (c_in != c_out or stride != 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn1(self.conv1(x))
        return self.skip(x) + self.conv2(h * h)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block1 = ResidualBlock(4, 4)
        self.block2 = ResidualBlock(4, 6, stride=2)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(self.stem(x)))
        h = self.bn(h)  # after an add: cannot fold, becomes an integer scale op
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def _randomize_bn(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def test_residual_blocks_with_identity_and_conv_skips() -> None:
    torch.manual_seed(4)
    model = TinyResNet()
    _randomize_bn(model)
    qm = _check(model, torch.rand(48, 1, 8, 8).numpy())  # measured ~0.5%
    assert not qm.is_chain
    adds = [n for n in qm.nodes if n.op.kind == "add"]
    assert [a.name for a in adds] == ["block1.add", "block2.add"] and all(len(a.inputs) == 2 for a in adds)
    assert adds[0].inputs[0] == "stem"  # the identity skip reads the stem directly
    kinds = [n.op.kind for n in qm.nodes]
    assert kinds.count("scale") == 1  # bn1 folded twice, the last BatchNorm kept as an integer op
    with pytest.raises(GraphModelError, match="linearize"):
        qm.ops  # noqa: B018
    assert "reads" in qm.bounds().table() and "block1.add" in qm.bounds().table()


def test_mlp_residual_with_a_linear_skip_and_subtraction() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.skip, self.out = nn.Linear(10, 8), nn.Linear(8, 8), nn.Linear(10, 8), nn.Linear(8, 2)
            self.act = Poly([0.1, 0.5, 0.2])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.b(self.act(self.a(x)))
            return self.out(self.skip(x) - h)

    torch.manual_seed(5)
    _check(Net(), torch.randn(64, 10).numpy())


def test_concatenation_along_channels() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left, self.right = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 3, 1)
            self.fc = nn.Linear(5 * 16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.left(x) ** 2, self.right(x)], dim=1)
            return self.fc(torch.flatten(F.avg_pool2d(h, 2), 1))

    torch.manual_seed(6)
    qm = _check(Net(), torch.rand(32, 1, 8, 8).numpy())
    assert any(n.op.kind == "concat" for n in qm.nodes)


def test_batchnorm_anywhere_and_conv1d() -> None:
    torch.manual_seed(8)
    start = nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 5), Square(), nn.BatchNorm1d(5), nn.Linear(5, 3))
    _randomize_bn(start)
    qm = _check(start, np.random.default_rng(0).normal(size=(64, 6)))
    assert [n.op.kind for n in qm.nodes] == ["scale", "linear", "square", "scale", "linear"]
    seq = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.BatchNorm1d(3), Square(), nn.Flatten(), nn.Linear(24, 2))
    _randomize_bn(seq)
    qm1 = _check(seq, np.random.default_rng(1).random((64, 2, 8)))
    assert [n.op.kind for n in qm1.nodes] == ["conv1d", "square", "flatten", "linear"]  # folded


def test_every_unsupported_step_is_named_in_one_error() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.act, self.pool = nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)
            self.fc = nn.Linear(18, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(self.act(self.conv(x)))
            flat = torch.flatten(F.max_pool2d(torch.sigmoid(h), 1), 1)
            return F.softmax(self.fc(flat), dim=1) + flat.sum(1, keepdim=True)

    with pytest.raises(UnsupportedLayerError) as info:
        quantize_model(Net(), np.zeros((2, 1, 8, 8)))
    text = str(info.value)
    for piece in ("act (ReLU)", "pool (MaxPool2d)", "(Sigmoid)", "max_pool2d (MaxPool2d)", "(Softmax)", "sum",
                  "approximate_activations", "AvgPool2d"):
        assert piece in text, piece
    assert len(info.value.problems) == 6


def test_square_and_poly_are_leaves_of_the_trace() -> None:
    """Poly.forward loops over its coefficients; torch.fx must not trace into it."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act1, self.fc2, self.act2 = nn.Linear(4, 4), Poly([0.0, 1.0, 0.5]), nn.Linear(4, 2), Square()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act2(self.fc2(self.act1(self.fc1(x))))

    torch.manual_seed(9)
    qm = _check(Net(), torch.rand(32, 4).numpy())
    assert [n.name for n in qm.nodes] == ["fc1", "act1", "fc2", "act2"]


def test_graph_models_survive_save_and_load(tmp_path) -> None:
    """Version-2 artifacts record which nodes each op reads (add, concat, scale ops included)."""
    from secquant import QuantizedModel

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.res = TinyResNet()
            self.side = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.res(x), self.side(torch.flatten(x, 1)) * 0.5], dim=1)

    torch.manual_seed(10)
    model = Net().eval()
    _randomize_bn(model)
    x = torch.rand(32, 1, 8, 8).numpy()
    qm = quantize_model(model, x, bits=6)
    kinds = {n.op.kind for n in qm.nodes}
    assert {"add", "concat", "scale"} <= kinds
    loaded = QuantizedModel.load(qm.save(tmp_path / "graph.sqm"))
    assert [(n.name, n.inputs) for n in loaded.nodes] == [(n.name, n.inputs) for n in qm.nodes]
    assert loaded.summary() == qm.summary()
    xq = qm.quantize_input(x)
    np.testing.assert_array_equal(loaded.forward_int(xq), qm.forward_int(xq))
