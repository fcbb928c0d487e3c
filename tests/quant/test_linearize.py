"""linearize: a DAG laid out as a chain of linear / square / poly / requantize stages, proven equal on forward_int.

Oracle: the graph model's own ``forward_int`` (itself checked against the loop
reference in test_graphs.py), on real inputs and on corners of the input box.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from secquant import quantize_model
from secquant.nn import Square
from secquant.quant.linearize import CHAIN_OPS, linearize
from secquant.quant.requantize import RequantizeAt, RequantizeConfig
from tests.quant.test_graphs import ResidualBlock, TinyResNet, _randomize_bn


def _inputs(qm, x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    iq = qm.input_quant
    corners = np.where(rng.random((4, *qm.input_shape)) < 0.5, iq.lo, iq.hi).astype(np.int64)
    return np.concatenate([qm.quantize_input(x[:8]), corners])


def _check(qm, x: np.ndarray):
    lin = linearize(qm)
    assert lin.is_chain and all(type(op) in CHAIN_OPS for op in lin.ops)
    xq = _inputs(qm, x)
    expected = qm.forward_int(xq)
    np.testing.assert_array_equal(lin.forward_int(xq), expected.reshape(len(xq), -1))
    assert lin.modulus == qm.modulus and lin.bounds().bits <= qm.bounds().bits
    np.testing.assert_array_equal(lin.dequantize_output(lin.forward_int(xq)),
                                  qm.dequantize_output(expected).reshape(len(xq), -1))
    return lin


def test_resnet_skips_are_carried_as_pass_through_features() -> None:
    torch.manual_seed(4)
    model = TinyResNet().eval()
    _randomize_bn(model)
    x = torch.rand(32, 1, 8, 8).numpy()
    qm = quantize_model(model, x, bits=8)
    lin = _check(qm, x)
    kinds = [op.kind for op in lin.ops]
    assert kinds == ["flatten", "linear", "poly", "linear", "poly", "linear"]
    first_poly = lin.ops[2]
    # block 1 squares 4x8x8 features and carries the stem's 4x8x8 output for its identity skip
    assert first_poly.coeffs.shape == (3, 512)
    np.testing.assert_array_equal(first_poly.coeffs[:, :256].T, np.tile([0, 0, 1], (256, 1)))
    np.testing.assert_array_equal(first_poly.coeffs[:, 256:].T, np.tile([0, 1, 0], (256, 1)))


def test_requantized_graph_with_mixed_stages() -> None:
    """A stage that requantizes one branch and squares another (whose input is already small)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.block = ResidualBlock(2, 2)
            self.fc = nn.Linear(2 * 36 + 36, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.block(self.conv(x))
            return self.fc(torch.cat([torch.flatten(h * h, 1), torch.flatten(x * x, 1)], dim=1))

    torch.manual_seed(5)
    model = Net().eval()
    _randomize_bn(model)
    x = torch.rand(48, 1, 6, 6).numpy()
    before = _check(quantize_model(model, x, bits=6, requantize=RequantizeConfig()), x)
    # stage 1 squares the (8-bit) input for x * x and requantizes block.conv1 before its square
    assert [op.kind for op in before.ops if op.name.startswith("stage1.")] == ["linear", "poly", "requantize"]
    after = _check(quantize_model(model, x, bits=6, requantize=RequantizeConfig(at=RequantizeAt.AFTER_ACTIVATION)), x)
    assert [op.kind for op in after.ops].count("requantize") == 2  # each after a stage of squares


def test_chains_the_backends_know_are_returned_unchanged_and_others_are_composed() -> None:
    torch.manual_seed(6)
    x = torch.rand(32, 1, 6, 6).numpy()
    plain = quantize_model(nn.Sequential(nn.Conv2d(1, 2, 3), Square(), nn.Flatten(), nn.Linear(32, 3)), x)
    assert linearize(plain) is plain
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), Square(), nn.BatchNorm2d(2), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    _randomize_bn(bn)
    qm = quantize_model(bn.eval(), x)
    assert any(n.op.kind == "scale" for n in qm.nodes)
    lin = _check(qm, x)
    assert [op.kind for op in lin.ops] == ["flatten", "linear", "square", "linear"]


def test_the_backends_lowering_accepts_a_linearized_graph() -> None:
    from secquant.quant.lowering import lower

    torch.manual_seed(7)
    model = TinyResNet().eval()
    _randomize_bn(model)
    x = torch.rand(16, 1, 8, 8).numpy()
    lin = linearize(quantize_model(model, x, bits=6))
    xq = lin.quantize_input(x)
    out = xq
    for stage in lower(lin):
        out = stage.apply(out)
    np.testing.assert_array_equal(np.asarray(out), lin.forward_int(xq))
