"""Completed squares (``secquant.backends.ckks.square``): degree-2 polynomials in one level, still within bound.

Oracles:
* the rewrite is exact over the reals: the stages with and without it,
  evaluated in float64, give the same outputs (relative 1e-9), on a
  requantized six-activation MLP (requantize ops folded, roundings skipped
  alike) and on a Poly MLP (where both also equal ``qm.forward_int``);
* every value a rewritten stage forms lies within its bounds;
* the planner: one level less per completed polynomial, and the cheaper plan;
* real SEAL ciphertexts: every decrypted integer within the stated bound of
  ``qm.forward_int``, in both modes, and a planted bug (the shift skipped)
  breaks that bound.  The bound is six-sigma: false failures far below 1e-6.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.ckks.evaluate import Evaluator
from secquant.backends.ckks.square import complete_squares
from secquant.backends.ckks.stages import Stage, StageKind, build_stages
from secquant.data import load_dataset
from secquant.models import ZooName
from secquant.nn import Poly
from secquant.quant.lowering import clipped
from tests.conformance.zoo import Quant, quantize, trained

pytest.importorskip("tenseal")


def _floats(values: object) -> np.ndarray:
    return np.array([float(v) for v in np.asarray(values).reshape(-1)], dtype=np.float64)


def _run(stages: list[Stage], x: np.ndarray, check_bounds: bool = False) -> np.ndarray:
    """The stages in float64 on one flattened input (requantize roundings skipped, as CKKS skips them)."""
    for st in stages:
        if st.square_shift is not None:
            x = (x + st.square_shift) ** 2
        elif st.kind is StageKind.SQUARE:
            x = x * x
        elif st.kind is StageKind.POLY:
            c = np.array([_floats(row) for row in np.asarray(st.coeffs)])
            x = sum(c[i] * x**i for i in range(c.shape[0]))
        elif st.matrix is None:
            x = x + st.bias_float()
        else:
            pre = st.matrix @ x
            if check_bounds and (st.pre_bias or not st.rounding):  # a folded row's partial sums may pass ±L
                assert np.all(np.abs(pre) <= max(st.pre_bias, float(np.max(st.out_bound))) * (1 + 1e-9)), st.names
            x = pre + st.bias_float()
        if check_bounds and st.kind is StageKind.SQUARE:
            assert np.all(np.abs(x) <= st.out_bound * (1 + 1e-9)), st.names
    return x


@cache
def _deep() -> tuple[secquant.QuantizedModel, np.ndarray]:
    t = trained(ZooName.DEEP_MLP, n_train=300, epochs=2)
    return quantize(t, Quant.REQUANT), t.x_test[:40]


@cache
def _poly_mlp() -> tuple[secquant.QuantizedModel, np.ndarray]:
    """Digits 64 -> 32 -> Poly([0.1, 0.5, 0.25]) -> 10, full-batch Adam, fixed seed."""
    ds = load_dataset("digits")
    x, xt = ds.x_train.reshape(len(ds.x_train), -1), ds.x_test.reshape(len(ds.x_test), -1)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = nn.Sequential(nn.Linear(64, 32), Poly([0.1, 0.5, 0.25]), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(ds.y_train)).backward()
        opt.step()
    return secquant.quantize_model(net.eval(), x[:512]), xt


def test_the_rewrite_is_exact_over_the_reals_and_within_its_bounds() -> None:
    qm, x = _deep()
    plain, done = build_stages(qm), build_stages(qm, complete=float("inf"))
    assert sum(st.square_shift is not None for st in done) == 3  # the three Polys; the Squares stay
    assert sum(st.levels for st in done) == sum(st.levels for st in plain) - 3
    xq = qm.quantize_input(x)
    inside = ~clipped(qm, xq)  # the bounds of a requantized model hold where no requantize op clips
    assert inside.sum() >= len(x) // 2
    for row, ok in zip(xq.reshape(len(x), -1).astype(np.float64), inside):
        want = _run(plain, row)
        got = _run(done, row, check_bounds=bool(ok))
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(want)))), (got, want)


def test_the_rewrite_equals_the_integer_model_without_requantize_ops() -> None:
    qm, x = _poly_mlp()
    done = build_stages(qm, complete=float("inf"))
    assert [st.kind for st in done] == [StageKind.AFFINE, StageKind.SQUARE, StageKind.AFFINE]
    xq = qm.quantize_input(x[:50])
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    got = np.array([_run(done, row.astype(np.float64)) for row in xq.reshape(len(xq), -1)])
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-6)


def test_what_cannot_be_completed_is_left_alone() -> None:
    qm, _ = _poly_mlp()
    stages = build_stages(qm)
    poly = stages[1]
    a2 = np.array(poly.coeffs[2], dtype=object)
    a2[0] = 0  # one feature's polynomial is linear: no square to complete
    zero = [stages[0], Stage(poly.source, poly.in_bound, poly.out_bound, None, poly.bias,
                             np.array([poly.coeffs[0], poly.coeffs[1], a2], dtype=object)), stages[2]]
    assert all(a is b for a, b in zip(complete_squares(zero), zero))
    assert all(a is b for a, b in zip(complete_squares(stages[:2]), stages[:2]))  # nothing after the POLY


def test_the_planner_keeps_the_cheaper_plan_and_says_so() -> None:
    qm, _ = _deep()
    with_sq = secquant.compile(qm, "ckks", mode="latency").parameters()
    without = secquant.compile(qm, "ckks", mode="latency", complete_squares=False).parameters()
    done = [s for s in with_sq["stages"] if "completed_square" in s]
    assert done and all(s["kind"] == "square" for s in done)
    assert with_sq["depth"] == without["depth"] - len(done)
    assert len(with_sq["primes"]) < len(without["primes"])


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_completed_squares_decrypt_within_the_stated_bound(mode: str) -> None:
    qm, x = _poly_mlp()
    em = secquant.compile(qm, "ckks", mode=mode)
    params = em.parameters()
    without = secquant.compile(qm, "ckks", mode=mode, complete_squares=False).parameters()
    assert [s["kind"] for s in params["stages"]] == ["affine", "square", "affine"]
    assert params["depth"] == without["depth"] - 1
    xq = qm.quantize_input(x[:256] if mode == "throughput" else x[:8])
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    assert float(np.max(np.abs(out - ref))) <= params["max_abs_error_int"]
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.99


def test_a_skipped_shift_breaks_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the evaluator forgets the shift; the oracle must notice."""
    qm, x = _poly_mlp()
    em = secquant.compile(qm, "ckks", mode="latency")
    monkeypatch.setattr(Evaluator, "_shift_for_square", lambda self, *a, **k: None)
    xq = qm.quantize_input(x[:2])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert float(np.max(np.abs(out - ref))) > em.parameters()["max_abs_error_int"]
