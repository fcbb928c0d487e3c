"""Pruned models, pruned the way users prune them (``torch.nn.utils.prune``).

A filter whose weights are all zero used to get the weight scale 1.0 under
per-channel quantization, hundreds of times below its neighbours'.  The next
layer divides its weights by each input feature's scale, so the dead channel's
columns dominated every row and the live channels' weights rounded to zero:
the integer model of a pruned CNN predicted from its dead channels alone.

Oracles: the float model (argmax agreement on real digits), the float weights'
nonzero pattern, and the per-tensor scale as the known answer for an empty range.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import secquant
from secquant.data import load_dataset
from secquant.quant.calibration import symmetric_scale
from secquant.training import TrainOptions, train_classifier


class PrunableCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.fc = nn.Linear(6 * 36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(torch.flatten(h * h, 1))


@pytest.fixture(scope="module")
def trained() -> tuple[PrunableCNN, np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    x_train, x_test = ds.images()
    torch.manual_seed(0)
    model = PrunableCNN()
    train_classifier(model, x_train, ds.y_train, TrainOptions(epochs=3, lr=1e-2, seed=0))
    return model, x_train, x_test


def _agreement(model: nn.Module, qm: secquant.QuantizedModel, x: np.ndarray) -> float:
    with torch.no_grad():
        want = model(torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean(qm.predict(x).argmax(1) == want))


@pytest.mark.parametrize("amount", [1, 2, 5])
def test_pruned_filters_keep_the_next_layer(trained, amount: int) -> None:
    """ln_structured zeroes whole filters; the integer model still follows the float one."""
    model, x_train, x_test = trained
    pruned = PrunableCNN()
    pruned.load_state_dict(model.state_dict())
    prune.ln_structured(pruned.conv, "weight", amount=amount, n=1, dim=0)
    prune.remove(pruned.conv, "weight")
    qm = secquant.quantize_model(pruned.eval(), x_train[:500], bits=8)
    fc = next(op for op in qm.ops if op.name == "fc")
    live = np.count_nonzero(np.asarray(fc.weight))
    assert live > 0.95 * pruned.fc.weight.numel(), "the live channels' weights rounded to zero"
    assert _agreement(pruned, qm, x_test) >= 0.97


def test_unstructured_pruning_with_hooks_still_quantizes(trained) -> None:
    """Pruning left in place (weight = weight_orig * weight_mask, a forward pre-hook) quantizes as the masked model."""
    model, x_train, x_test = trained
    pruned = PrunableCNN()
    pruned.load_state_dict(model.state_dict())
    prune.l1_unstructured(pruned.fc, "weight", amount=0.6)
    prune.l1_unstructured(pruned.conv, "weight", amount=0.3)
    qm = secquant.quantize_model(pruned.eval(), x_train[:500], bits=8)
    fc = next(op for op in qm.ops if op.name == "fc")
    assert np.count_nonzero(np.asarray(fc.weight)) <= np.count_nonzero(pruned.fc.weight.detach().numpy())
    assert _agreement(pruned, qm, x_test) >= 0.97


def test_an_empty_range_takes_the_per_tensor_scale() -> None:
    """Known answer: 127 / 2 for the widest channel, the same for the empty one; 1.0 when all are empty."""
    scale = symmetric_scale(np.array([-1.0, 0.0, -2.0]), np.array([0.5, 0.0, 1.0]), 8)
    assert scale.tolist() == [127.0, 63.5, 63.5]
    assert symmetric_scale(np.zeros(3), np.zeros(3), 8).tolist() == [1.0, 1.0, 1.0]
