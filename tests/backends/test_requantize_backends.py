"""Requantized and graph models on every encrypted scheme (issue 12), with real ciphertexts.

Oracles: ``qm.forward_int`` (bit for bit for BFV and Paillier; within the
stated bound for CKKS on every input on which no requantize op clips), the
non-requantized model's own ``modulus_needed`` (for the modulus BFV's refusal
quotes), an independent float evaluation of the lowered stages with every
requantize as the real product ``x·M/2**s`` (the circuit CKKS computes, for
its own noise bound), and argmax agreement with ``qm.predict`` on real test
data.  CKKS bounds are six-sigma bounds: a false failure has probability far
below 1e-6 per run.

Every test here failed before issue 12's backend work: the lowering refused
requantize ops (UnsupportedLayerError) and graphs (GraphModelError), and the
three-Square MLP needed a 206-bit modulus that no CKKS chain holds.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant import models
from secquant.data import load_dataset
from secquant.errors import UnsupportedLayerError
from secquant.nn import Square
from secquant.quant.lowering import Affine, Poly, Requantize, Stage, clipped, lower
from secquant.quant.requantize_config import RequantizeConfig
from tests.spawn import in_spawned_process

pytest.importorskip("tenseal")


@functools.cache
def _three_square_mlp() -> tuple[nn.Module, object]:
    """30 -> 16 -> 16 -> 16 -> 2 with three Squares, trained on breast cancer (fixed seed)."""
    ds = load_dataset("breast_cancer")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 16), Square(), nn.Linear(16, 16), Square(), nn.Linear(16, 16), Square(),
                        nn.Linear(16, 2))
    return models.train(net, ds.x_train, ds.y_train, epochs=30, lr=3e-3), ds


@pytest.fixture(scope="module")
def mlp3() -> tuple[secquant.QuantizedModel, secquant.QuantizedModel, np.ndarray]:
    """(requantized, exact) integer models of the three-Square MLP, and the test rows."""
    net, ds = _three_square_mlp()
    rq = secquant.quantize_model(net, ds.x_train[:256], bits=8, requantize=RequantizeConfig())
    exact = secquant.quantize_model(net, ds.x_train[:256], bits=8)
    return rq, exact, ds.x_test


def _real(stages: tuple[Stage, ...], xq: np.ndarray) -> np.ndarray:
    """The circuit CKKS computes, in float64: requantize as x·M/2**s (no rounding, no clip)."""
    x = np.asarray(xq, dtype=np.float64).reshape(len(xq), -1)
    for st in stages:
        if isinstance(st, Affine):
            x = x @ np.asarray(st.matrix, dtype=np.float64).T + np.asarray(st.bias, dtype=np.float64)
        elif isinstance(st, Requantize):
            x = x * st.factor
        elif isinstance(st, Poly):
            c = np.asarray(st.coeffs, dtype=np.float64)
            x = sum(c[i] * x**i for i in range(c.shape[0]))
        else:
            x = x * x
    return x


def test_bfv_refuses_a_requantized_model_and_quotes_the_modulus_without_it(mlp3) -> None:
    from secquant.backends.bfv.requantize import RequantizedModelError, unrequantized_bits

    rq, exact, _ = mlp3
    true_bits = exact.modulus_needed.bit_length()
    assert true_bits > 200  # what the issue reports: 206 bits, four 57-bit CRT primes
    with pytest.raises(UnsupportedLayerError) as info:
        secquant.compile(rq, "bfv")
    err = info.value
    assert isinstance(err, RequantizedModelError)
    assert "ckks" in str(err) and "requantize=None" in str(err) and f"2**{err.bits_without_requantize}" in str(err)
    assert err.ops == [s.names[0] for s in lower(rq) if isinstance(s, Requantize)] and len(err.ops) == 3
    # the estimate from the requantized model is close to the exact model's real bound; exact on that model itself
    assert true_bits - 1 <= err.bits_without_requantize <= true_bits + 8
    assert abs(unrequantized_bits(lower(exact)) - true_bits) <= 1


def test_ckks_plans_the_three_square_mlp_with_requantize_folded(mlp3) -> None:
    rq, exact, _ = mlp3
    with pytest.raises(secquant.errors.ParameterError):
        secquant.compile(exact, "ckks", mode="latency")  # 206 bits: refused, as the issue reports
    p = secquant.compile(rq, "ckks", mode="latency").parameters()
    assert p["poly_degree"] <= 32768
    assert p["depth"] == 7  # 4 affine + 3 squares: no level is spent on the 3 requantize ops
    rq_info = p["requantize"]
    assert rq_info["stages_with_requantize"] == [["0", "0.requantize"], ["2", "2.requantize"], ["4", "4.requantize"]]
    assert rq_info["clip_possible"] and "no requantize op clips" in rq_info["bound_holds_for"]
    assert p["max_abs_error"] >= rq_info["rounding_only_error_bound"] >= 1.0  # at least the skipped roundings


def test_ckks_three_square_mlp_encrypted_within_the_stated_bound(mlp3) -> None:
    """Real ciphertexts (throughput, every test row): within the bound where no clip binds; CKKS's own noise
    within its part of the bound against the unrounded circuit."""
    rq, _, x_test = mlp3
    em = secquant.compile(rq, "ckks", mode="throughput")
    xq = rq.quantize_input(x_test)
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    ref = np.asarray(rq.forward_int(xq), dtype=np.float64)
    inside = ~clipped(rq, xq)
    assert inside.mean() > 0.9
    p = em.parameters()
    assert np.max(np.abs(out - ref)[inside]) <= p["max_abs_error"]
    real = _real(lower(rq), xq)
    assert np.max(np.abs(out - real)[inside]) <= p["requantize"]["ckks_only_error_bound"] + 0.5  # + the output rounding
    # the rounding the integer model does is really there (a bound that could not fail would be useless)
    assert np.max(np.abs(real - ref)[inside]) > 0


def _six_activation_agreement() -> tuple[int, float]:
    """(N, argmax agreement with ``qm.predict``) of the zoo's 6-activation MLP under CKKS throughput."""
    entry = models.ZOO[models.ZooName.DEEP_MLP]
    ds = load_dataset(entry.dataset)
    net = models.train(models.zoo_model(entry.name), ds.x_train, ds.y_train, epochs=20)
    qm = secquant.quantize_model(net, ds.x_train[:256], config=entry.quant)
    em = secquant.compile(qm, "ckks", mode="throughput")
    scores = em.predict(ds.x_test)
    return int(em.parameters()["poly_degree"]), float(np.mean(scores.argmax(1) == qm.predict(ds.x_test).argmax(1)))


@pytest.mark.slow
def test_ckks_six_activation_mlp_agrees_with_predict() -> None:
    """The zoo's 6-activation MLP, requantized (its zoo config), at N <= 32768 on every digits test row.

    Run in a spawned process (``tests/spawn.py``): its N=32768 batch holds gigabytes."""
    n, agree = in_spawned_process(_six_activation_agreement)
    assert n <= 32768
    assert agree >= 0.99


def test_paillier_requantizes_on_the_client_bit_exactly(mlp3) -> None:
    rq, _, x_test = mlp3
    em = secquant.compile(rq, "paillier", interactive=True)
    xq = rq.quantize_input(x_test[:4])
    np.testing.assert_array_equal(np.asarray(em.forward_int(xq), dtype=object),
                                  np.asarray(rq.forward_int(xq), dtype=object))
    assert em.last_timings["rounds"] == 4  # four affine blocks; the client squares and requantizes in between


class ResidualMLP(nn.Module):
    """A residual block as users write it: ``h + fc2(h*h)``, then a square and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 16), nn.Linear(16, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = h + self.fc2(h * h)
        return self.fc3(h * h)


@pytest.fixture(scope="module")
def resnet() -> tuple[secquant.QuantizedModel, secquant.QuantizedModel, np.ndarray]:
    """A residual graph trained on digits, exact and requantized."""
    ds = load_dataset("digits")
    torch.manual_seed(0)
    net = models.train(ResidualMLP(), ds.x_train, ds.y_train, epochs=20)
    exact = secquant.quantize_model(net, ds.x_train[:256], bits=6)
    rq = secquant.quantize_model(net, ds.x_train[:256], bits=6, requantize=RequantizeConfig())
    assert not exact.is_chain and not rq.is_chain
    return exact, rq, ds.x_test


def test_bfv_evaluates_a_residual_graph_exactly(resnet) -> None:
    exact, _, x = resnet
    em = secquant.compile(exact, "bfv", mode="latency")
    xq = exact.quantize_input(x[:4])
    np.testing.assert_array_equal(np.asarray(em.forward_int(xq), dtype=object),
                                  np.asarray(exact.forward_int(xq), dtype=object))


@pytest.mark.parametrize(("which", "precision_bits"), [(0, 6.0), (1, 12.0)])
def test_ckks_evaluates_a_residual_graph_within_its_bound(resnet, which: int, precision_bits: float) -> None:
    """Exact (its 73-bit bound allows 6 bits of CKKS precision, not the default 12) and requantized."""
    qm, x = resnet[which], resnet[2]
    em = secquant.compile(qm, "ckks", mode="latency", precision_bits=precision_bits)
    xq = qm.quantize_input(x[:8])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    inside = ~clipped(qm, xq)
    err = np.abs(out - np.asarray(qm.forward_int(xq), dtype=np.float64))
    assert out.shape == (8, *qm.output_shape) and inside.any()
    assert np.max(err[inside]) <= em.parameters()["max_abs_error"]


def test_paillier_evaluates_a_requantized_residual_graph_exactly(resnet) -> None:
    _, rq, x = resnet
    em = secquant.compile(rq, "paillier", interactive=True)
    xq = rq.quantize_input(x[:2])
    np.testing.assert_array_equal(np.asarray(em.forward_int(xq), dtype=object),
                                  np.asarray(rq.forward_int(xq), dtype=object))


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_ckks_encodes_weights_when_used_past_the_cache_budget(resnet, mode: str, monkeypatch) -> None:
    """Folded requantize factors make every weight distinct, a large convolution has thousands of diagonals:
    past PLAIN_CACHE_BYTES the server keeps the values and encodes each plaintext when used; same results."""
    from secquant.backends.ckks import evaluate

    monkeypatch.setattr(evaluate, "PLAIN_CACHE_BYTES", 0)
    _, rq, x = resnet
    em = secquant.compile(rq, "ckks", mode=mode)
    xq = rq.quantize_input(x[:4])
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    prepared = em._server.evaluator._prepared  # type: ignore[union-attr]
    lazy = [p for p in prepared if isinstance(p, dict) and any(isinstance(v, np.ndarray) for v in p.values())]
    lazy += [p for p in prepared if isinstance(p, list) and any(isinstance(v, float) for row in p if isinstance(row, list)
                                                                 for _, v in row)]
    assert lazy
    inside = ~clipped(rq, xq)
    err = np.abs(out - np.asarray(rq.forward_int(xq), dtype=np.float64))
    assert np.max(err[inside], initial=0.0) <= em.parameters()["max_abs_error"]


@functools.cache
def _digits_cnn() -> tuple[secquant.QuantizedModel, secquant.QuantizedModel, np.ndarray]:
    """The issue's digits CNN: conv -> poly -> pool -> conv -> poly -> pool -> linear; (exact, requantized, test)."""
    from secquant.nn import Poly as PolyLayer

    ds = load_dataset("digits")
    x_train, x_test = ds.x_train.reshape(-1, 1, 8, 8), ds.x_test.reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), PolyLayer([0.0, 0.5, 0.1]), nn.AvgPool2d(2),
                        nn.Conv2d(4, 8, 3, padding=1), PolyLayer([0.0, 0.5, 0.1]), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(32, 10))
    net = models.train(net, x_train, ds.y_train, epochs=10)
    return (secquant.quantize_model(net, x_train[:256], bits=8),
            secquant.quantize_model(net, x_train[:256], bits=8, requantize=RequantizeConfig()), x_test)


@pytest.mark.slow
def test_ckks_evaluates_the_requantized_digits_cnn() -> None:
    """The exact CNN (128 bits) is refused (a poly coefficient past 2**52); requantized, it runs within its bound."""
    exact, rq, x = _digits_cnn()
    with pytest.raises(secquant.errors.ParameterError, match="poly coefficient"):
        secquant.compile(exact, "ckks")
    em = secquant.compile(rq, "ckks", mode="latency")
    assert em.parameters()["poly_degree"] <= 16384
    xq = rq.quantize_input(x[:3])
    err = np.abs(np.asarray(em.forward_int(xq), dtype=np.float64) - np.asarray(rq.forward_int(xq), dtype=np.float64))
    inside = ~clipped(rq, xq)
    assert np.max(err[inside], initial=0.0) <= em.parameters()["max_abs_error"]


def test_bfv_auto_does_not_pay_a_throughput_batch_for_eight_digits_cnn_inputs() -> None:
    """The issue's 143 s for 8 inputs came from the throughput default; auto predicts latency cheaper here."""
    from secquant.backends.base import Mode

    exact, _, _ = _digits_cnn()
    em = secquant.compile(exact, "bfv")
    choice = em.auto.choose(8)
    assert choice.mode is Mode.LATENCY and choice.seconds[Mode.LATENCY] < choice.seconds[Mode.THROUGHPUT] / 2
