"""What the client sees of a layout follows the layers' geometry, never which weights are zero.

The client gets the first stage's gather pattern (the inputs each output reads)
and makes Galois keys for the rotation steps the server asks for.  Both were
derived from ``A != 0``, so a weight that quantized to zero, or a pruned one,
showed.  They now come from each stage's ``support`` (:mod:`secquant.quant.support`).

Oracles: the receptive field of a convolution (known answer), invariance of
everything client-visible between a model and the same model with planted
zeros (a tap zero in every channel, dead features, a banded dense layer), and
real SEAL ciphertexts that still decrypt bit-exact (BFV) or within the stated
bound (CKKS) when the layout holds diagonals whose weights are all zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.base import run_rounds
from secquant.data import load_dataset
from secquant.quant.intops import IntConv2d
from secquant.quant.lowering import Affine, lower
from secquant.quant.support import structural_op

pytest.importorskip("tenseal")


class PrunedCNN(nn.Module):
    """conv 1 -> 4 (3x3) -> square -> fc 144 -> 16 -> square -> fc 16 -> 10, written as users write it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 36, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = self.fc1(torch.flatten(h * h, 1))
        return self.fc2(torch.square(h))


def _quantized(zeros: bool) -> tuple[secquant.QuantizedModel, np.ndarray]:
    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), 1, 8, 8)
    torch.manual_seed(0)
    model = PrunedCNN()
    for p in model.parameters():
        nn.init.uniform_(p, -0.3, 0.3)
    if zeros:
        with torch.no_grad():
            model.conv.weight[:, :, 0, 0] = 0  # a tap zero in every channel
            model.conv.weight[:, :, 2, 1] = 0
            model.fc1.weight[:, :40] = 0  # 40 dead features
            band = np.abs(np.subtract.outer(np.arange(10), np.arange(16))) < 3
            model.fc2.weight[torch.from_numpy(~band)] = 0  # a banded (pruned) dense layer
    return secquant.quantize_model(model.eval(), x[:256], bits=6), x


@pytest.fixture(scope="module")
def models() -> dict[bool, tuple[secquant.QuantizedModel, np.ndarray]]:
    return {zeros: _quantized(zeros) for zeros in (False, True)}


def test_support_is_the_receptive_field_whatever_the_weights(models) -> None:
    """Known answer: a 3x3 conv on 8x8 reads 9 inputs per output; the dense layers read everything."""
    dense, pruned = lower(models[False][0]), lower(models[True][0])
    conv = next(st for st in pruned if isinstance(st, Affine))
    assert conv.support.sum(axis=1).tolist() == [9] * conv.d_out
    assert int((conv.matrix != 0).sum(axis=1).max()) == 7  # two taps are zero in every channel
    for a, b in zip(dense, pruned, strict=True):
        if isinstance(a, Affine):
            assert isinstance(b, Affine) and np.array_equal(a.support, b.support)
            assert np.all(b.support[b.matrix != 0])  # the support covers every weight
    assert [st.support.all() for st in pruned if isinstance(st, Affine)][1:] == [True, True]


def test_structural_op_keeps_geometry_and_bias() -> None:
    op = IntConv2d(name="c", weight=np.array([[[[0, -3], [5, 0]]]]), bias=np.array([7]), stride=(2, 2), padding=(1, 1))
    twin = structural_op(op)
    assert np.array_equal(twin.weight, np.ones((1, 1, 2, 2))) and twin.bias.tolist() == [7]
    assert (twin.stride, twin.padding, twin.name) == ((2, 2), (1, 1), "c")


def _visible(em: secquant.EncryptedModel) -> dict[str, Any]:
    """Everything layout-derived that reaches the client: Galois steps and the gather pattern."""
    p = em.parameters()
    out: dict[str, Any] = {"steps": p.get("galois_steps") or p.get("rotation_steps"), "degree": p["poly_degree"]}
    backend = em.backend
    if p["scheme"] == "ckks":
        g = backend.plan.stages[0].gather
        out["gather"] = None if g is None else (g.cols.tolist(), np.asarray(g.rows).tolist(), g.block)
    else:
        cols = backend.params.layout.gather_cols
        out["gather"] = None if cols is None else cols.tolist()
    return out


def _check(em: secquant.EncryptedModel, qm: secquant.QuantizedModel, x: np.ndarray) -> None:
    """Two inputs through real ciphertexts: bit-exact (BFV) or within the stated bound (CKKS)."""
    client = em.client()
    server = em.server(client.public_material())
    bound = em.parameters().get("max_abs_error") or 0.0
    xq = qm.quantize_input(x[:2])
    for i in range(2):
        result, _ = run_rounds(client, server, client.encrypt(xq[i:i + 1]))
        got = np.asarray(client.decrypt(result), dtype=object)
        want = np.asarray(qm.forward_int(xq[i:i + 1]), dtype=object)
        assert np.abs((got - want).astype(float)).max() <= bound


@pytest.mark.parametrize(("scheme", "transfer"), [("bfv", "balanced"), ("ckks", "balanced"), ("ckks", "bytes")])
def test_zero_weights_do_not_show_to_the_client(models, scheme: str, transfer: str) -> None:
    """Planted zeros change nothing the client sees, and the layout still computes the model."""
    seen = {}
    for zeros, (qm, x) in models.items():
        em = secquant.compile(qm, scheme, mode="latency", transfer=transfer)
        seen[zeros] = _visible(em)
        _check(em, qm, x)
    assert seen[True]["gather"] is not None
    assert seen[True] == seen[False]


class Residual(nn.Module):
    """A residual block with a BatchNorm scale op: the lowering linearizes it (pass-through features)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 12)
        self.fc2 = nn.Linear(12, 12)
        self.norm = nn.BatchNorm1d(12)
        self.out = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(torch.flatten(x, 1))
        h = self.norm(self.fc2(h * h)) + h
        return self.out(h * h)


def test_residual_support_is_invariant_to_zero_weights() -> None:
    """Through the linearization: the twin's chain lines up with the model's, stage for stage."""
    ds = load_dataset("digits")
    supports = []
    for zeros in (False, True):
        torch.manual_seed(1)
        model = Residual()
        model.norm.running_var.fill_(2.0)
        if zeros:
            with torch.no_grad():
                model.fc1.weight[:, ::3] = 0
                model.fc2.weight[3:, :] = 0
                model.norm.weight[5] = 0
        qm = secquant.quantize_model(model.eval(), ds.x_train[:256], bits=6)
        stages = [st for st in lower(qm) if isinstance(st, Affine)]
        assert len(stages) >= 3 and all(np.all(st.support[st.matrix != 0]) for st in stages)
        supports.append([st.support for st in stages])
    assert [a.shape for a in supports[0]] == [b.shape for b in supports[1]]
    assert all(np.array_equal(a, b) for a, b in zip(*supports, strict=True))
