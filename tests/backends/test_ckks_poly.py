"""CKKS evaluates integer ``poly`` ops (secquant.nn.Poly) on real SEAL ciphertexts, in both modes.

Every compile here passes ``complete_squares=False``, so degree-2 polynomials are
evaluated as POLY stages (``tests/backends/test_ckks_square.py`` covers the
completed squares).  Oracles: ``qm.forward_int`` with the stated bound ``parameters()["max_abs_error_int"]``
(every decrypted integer lies within it, argmax agrees on >= 99% of >= 200
inputs), and analytic checks of the plan against ``qm.bounds()`` (each POLY
stage's partial bound covers the proven ``partial_max_abs``; every message
stays below 2**w and q0/2).  Encryption is randomized (fresh keys each run);
the bound is six-sigma, so the false-failure rate of the bound checks is far
below 1e-6 per run.  Training is deterministic (fixed seeds, one thread).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.errors import UnsupportedLayerError
from secquant.nn import Poly, Square, approximate_activations
from secquant.quant.calibration import PerTensor
from secquant.quant.config import QuantConfig

pytest.importorskip("tenseal")


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 1e-2) -> nn.Module:
    torch.set_num_threads(1)
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


@cache
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    return ds.x_train.reshape(len(ds.x_train), -1), ds.y_train, ds.x_test.reshape(len(ds.x_test), -1)


@cache
def _poly_mlp(per_tensor: bool) -> secquant.QuantizedModel:
    """Digits 64 -> 32 -> Poly([0.1, 0.5, 0.25]) -> 10; per-tensor weights give scalar poly coefficients."""
    x, y, _ = _digits()
    torch.manual_seed(0)
    net = _train(nn.Sequential(nn.Linear(64, 32), Poly([0.1, 0.5, 0.25]), nn.Linear(32, 10)), x, y, 60)
    config = QuantConfig(weight_granularity=PerTensor()) if per_tensor else None
    return secquant.quantize_model(net, x[:512], config=config)


@cache
def _mixed_mlp() -> secquant.QuantizedModel:
    """Digits 64 -> 16 -> Poly -> 16 -> Square -> 10."""
    x, y, _ = _digits()
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 16), Poly([0.0, 0.5, 0.2]), nn.Linear(16, 16), Square(), nn.Linear(16, 10))
    return secquant.quantize_model(_train(net, x, y, 60, lr=5e-3), x[:512])


@cache
def _relu_degree(degree: int) -> secquant.QuantizedModel:
    """Digits 64 -> 16 -> ReLU -> 10 with the ReLU replaced by a fitted polynomial of ``degree``."""
    x, y, _ = _digits()
    torch.manual_seed(2)
    net = _train(nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)), x, y, 60)
    poly = approximate_activations(net, degree, calibration=x[:512], learnable=False)
    return secquant.quantize_model(poly, x[:512])


def _check(em: secquant.EncryptedModel, xq: np.ndarray) -> dict[str, float]:
    ref = np.asarray(em.qm.forward_int(xq), dtype=np.float64)
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    err = float(np.max(np.abs(out - ref)))
    bound = em.parameters()["max_abs_error_int"]
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    assert out.shape == ref.shape
    assert err <= bound, f"max error {err} above the stated bound {bound}"
    assert agree >= 0.99, f"argmax agrees on only {agree:.3f}"
    print(f"{em.parameters()['mode']} n={len(out)}: max error {err:.0f} <= bound {bound}, argmax agreement {agree:.3f}")
    return {"err": err, "bound": bound, "agree": agree}


def _poly_stages(em: secquant.EncryptedModel) -> list:
    return [s for s in em.backend.plan.stages if s.stage.kind.value == "poly"]


def _check_plan_against_bounds(em: secquant.EncryptedModel) -> None:
    """Each POLY stage is scaled from at least the proven partial bound, its output message stays below 2**w,
    no power wraps around its level's modulus, and the final output stays below q0/2."""
    plan = em.backend.plan
    layers = {b.name: b for b in em.qm.bounds().layers}
    w = plan.scale_bits - 1
    for sp in _poly_stages(em):
        proven = layers[sp.stage.names[0]].partial_max_abs
        assert sp.stage.partial >= proven
        assert sp.scale_out * proven <= 2.0**w * (1 + 1e-9)
        assert sp.poly.term_scale * sp.stage.partial < math.prod(sp.level_primes[:sp.poly.coeff_primes]) / 2
        m = float(np.max(sp.stage.in_bound))
        for i, _a, _b, n_primes, _q, scale in sp.poly.products:  # every power's message after its rescale
            assert scale * m**i < math.prod(sp.level_primes[:n_primes - 1]) / 2
    assert plan.output_scale * (plan.output_bound + plan.max_abs_error) < plan.primes[0] / 2


@pytest.mark.parametrize("per_tensor", [True, False], ids=["scalar-coeffs", "per-channel"])
def test_poly_mlp_throughput_within_bound(per_tensor):
    qm = _poly_mlp(per_tensor)
    coeffs = qm.ops[1].coeffs
    assert coeffs.shape[0] == 3
    uniform = all(len(set(np.asarray(c).reshape(-1).tolist())) == 1 for c in coeffs)
    assert uniform == per_tensor  # per-channel scales make per-channel coefficients
    em = secquant.compile(qm, "ckks", mode="throughput", complete_squares=False)
    p = em.parameters()
    assert [s["kind"] for s in p["stages"]] == ["affine", "poly", "affine"]
    assert p["stages"][1]["levels"] == 2 and p["stages"][1]["ciphertext_products"] == 1
    _check_plan_against_bounds(em)
    _check(em, qm.quantize_input(_digits()[2][:300]))


@pytest.mark.slow
@pytest.mark.parametrize("per_tensor", [True, False], ids=["scalar-coeffs", "per-channel"])
def test_poly_mlp_latency_within_bound(per_tensor):
    qm = _poly_mlp(per_tensor)
    em = secquant.compile(qm, "ckks", mode="latency", complete_squares=False)
    _check_plan_against_bounds(em)
    _check(em, qm.quantize_input(_digits()[2][:40]))  # 40 latency inputs: ~8 s; throughput covers 300


def test_poly_mlp_latency_few_inputs():
    """The fast companion of the slow latency test: same circuit, 12 inputs, every integer within the bound."""
    qm = _poly_mlp(False)
    em = secquant.compile(qm, "ckks", mode="latency", complete_squares=False)
    _check_plan_against_bounds(em)
    xq = qm.quantize_input(_digits()[2][:12])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]
    assert np.array_equal(out.argmax(1), ref.argmax(1))


def test_square_and_poly_mixed_throughput():
    qm = _mixed_mlp()
    em = secquant.compile(qm, "ckks", mode="throughput", complete_squares=False)
    p = em.parameters()
    assert [s["kind"] for s in p["stages"]] == ["affine", "poly", "affine", "square", "affine"]
    assert p["depth"] == 5  # free first affine, poly 2, affine 1, square 1, affine 1
    _check_plan_against_bounds(em)
    _check(em, qm.quantize_input(_digits()[2][:256]))


@pytest.mark.slow
def test_square_and_poly_mixed_latency():
    qm = _mixed_mlp()
    em = secquant.compile(qm, "ckks", mode="latency", complete_squares=False)
    assert em.parameters()["depth"] == 6
    _check(em, qm.quantize_input(_digits()[2][:40]))  # 40 latency inputs; throughput covers 256


def test_fitted_relu_of_degree_three_throughput():
    """approximate_activations(degree=3): x**3 = x**2 · x, ceil(log2 3) + 1 = 3 levels; A_0 passes 2**53."""
    qm = _relu_degree(3)
    assert qm.ops[1].kind == "poly" and qm.ops[1].degree == 3
    em = secquant.compile(qm, "ckks", mode="throughput", complete_squares=False)
    (sp,) = _poly_stages(em)
    assert sp.levels == 3 and [i for i, *_ in sp.poly.products] == [2, 3]
    _check_plan_against_bounds(em)
    _check(em, qm.quantize_input(_digits()[2][:256]))


@pytest.mark.parametrize("degree", [4, 5])
def test_hand_made_higher_degree_throughput(degree):
    """Degrees 4 and 5 (x**4 = x**2·x**2, x**5 = x**4·x): 3 and 4 levels.

    An untrained net: the oracle is ``forward_int``, not accuracy.
    """
    from secquant.backends.ckks.stages import power_depth

    x, _, xt = _digits()
    torch.manual_seed(4)
    coeffs = [0.1, 0.5, 0.3, 0.1, 0.05, 0.02][: degree + 1]
    net = nn.Sequential(Poly(coeffs), nn.Linear(64, 10)).eval()  # on the raw input: small scale, small A_i
    qm = secquant.quantize_model(net, x[:512])
    assert qm.ops[1].degree == degree and np.all(np.asarray(qm.ops[1].coeffs[-1]) != 0)
    em = secquant.compile(qm, "ckks", mode="throughput", complete_squares=False)
    (sp,) = _poly_stages(em)
    assert sp.levels == power_depth(degree) + 1
    assert [i for i, *_ in sp.poly.products] == list(range(2, degree + 1))
    _check_plan_against_bounds(em)
    _check(em, qm.quantize_input(xt[:256]))


def test_degree_above_the_limit_is_refused_naming_the_layer():
    from secquant.backends.ckks.stages import MAX_POLY_DEGREE

    x, _, _ = _digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 4), Poly([0.1] * (MAX_POLY_DEGREE + 2)), nn.Linear(4, 10)).eval()
    qm = secquant.quantize_model(net, x[:64], bits=4)
    with pytest.raises(UnsupportedLayerError, match=rf"\b1 \(poly of degree {MAX_POLY_DEGREE + 1}\)"):
        secquant.compile(qm, "ckks")


def test_poly_on_the_raw_input_latency():
    """A Poly as the very first op (the input's scalar scale): the input ciphertext goes straight into the powers."""
    x, y, xt = _digits()
    torch.manual_seed(3)
    net = _train(nn.Sequential(Poly([0.0, 1.0, 0.05]), nn.Linear(64, 10)), x, y, 40)
    qm = secquant.quantize_model(net, x[:512], config=QuantConfig(input_symmetry="symmetric"))  # no zero point
    em = secquant.compile(qm, "ckks", mode="latency", complete_squares=False)
    assert [s["kind"] for s in em.parameters()["stages"]] == ["poly", "affine"]
    _check_plan_against_bounds(em)
    xq = qm.quantize_input(xt[:8])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]
