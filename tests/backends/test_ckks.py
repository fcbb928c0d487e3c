"""CKKS backend on real SEAL ciphertexts: agreement with the integer oracle and the stated error bound.

Oracle: ``qm.forward_int``.  CKKS is approximate, so each test checks that every
decrypted integer lies within ``parameters()["max_abs_error_int"]`` of the
oracle and that the argmax agrees on >= 99% of the inputs.  Encryption is
randomized (fresh keys each run); the bound is a six-sigma bound, so the
false-failure rate of the bound checks is far below 1e-6 per run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import secquant
from secquant.errors import ConfigError, InputRangeError, ParameterError

pytest.importorskip("tenseal")


def _check(em: secquant.EncryptedModel, xq: np.ndarray) -> dict[str, float]:
    ref = np.asarray(em.qm.forward_int(xq), dtype=np.float64)
    out = em.forward_int(xq)
    err = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - ref)))
    bound = em.parameters()["max_abs_error_int"]
    agree = float(np.mean(np.asarray(out, dtype=np.float64).argmax(1) == ref.argmax(1)))
    assert out.shape == ref.shape
    assert err <= bound, f"max error {err} above the stated bound {bound}"
    assert agree >= 0.99, f"argmax agrees on only {agree:.3f}"
    return {"err": err, "bound": bound, "agree": agree}


@pytest.fixture(scope="module")
def digits(digits_mlp):
    return digits_mlp.model, digits_mlp.qm, digits_mlp.x_test, digits_mlp.y_test


@pytest.fixture(scope="module")
def digits_latency(digits):
    return secquant.compile(digits[1], "ckks", mode="latency")


def test_digits_mlp_throughput_within_bound(digits):
    _, qm, x, _ = digits
    em = secquant.compile(qm, "ckks", mode="throughput")
    _check(em, qm.quantize_input(x[:300]))


@pytest.mark.slow
def test_digits_mlp_latency_within_bound(digits, digits_latency):
    _, qm, x, _ = digits
    _check(digits_latency, qm.quantize_input(x[:200]))


@pytest.mark.slow
def test_mnist_cnn_throughput_within_bound(mnist_cnn):
    qm, x = mnist_cnn.qm, mnist_cnn.x_test
    em = secquant.compile(qm, "ckks", mode="throughput")
    assert [s["kind"] for s in em.parameters()["stages"]] == ["affine", "square", "affine"]  # pool+fc merged
    _check(em, qm.quantize_input(x[:256]))


@pytest.mark.slow
def test_mnist_cnn_latency_within_bound(mnist_cnn):
    qm, x = mnist_cnn.qm, mnist_cnn.x_test
    em = secquant.compile(qm, "ckks", mode="latency")
    _check(em, qm.quantize_input(x[:24]))


@pytest.mark.slow
def test_two_squares_throughput_within_bound(digits_deep):
    qm, x = digits_deep.qm, digits_deep.x_test
    em = secquant.compile(qm, "ckks", mode="throughput")
    params = em.parameters()
    assert params["depth"] == 2  # two squares; every affine stage multiplies integer weights at scale 1
    assert all(s["primes_at_start"] == params["stages"][0]["primes_at_start"]
               for s in params["stages"][:2])  # the first affine stage drops no prime
    # uniform B-bit primes would need q0, four rescale primes (first affine free) and the special prime
    assert len(params["coeff_modulus_bits"]) < 6
    _check(em, qm.quantize_input(x[:200]))


def test_predict_returns_scores_like_qm(digits, digits_latency):
    _, qm, x, _ = digits
    scores = digits_latency.predict(x[:3])
    ref = qm.predict(x[:3])
    bound = digits_latency.parameters()["max_abs_error_int"] / qm.output_scale
    assert scores.dtype == np.float64 and scores.shape == ref.shape
    assert np.all(np.abs(scores - ref) <= bound)


def test_parameters_are_json_and_secure(digits_latency):
    p = json.loads(json.dumps(digits_latency.parameters()))
    assert p["security_bits"] >= 128
    assert p["coeff_modulus_total_bits"] <= 218 if p["poly_degree"] == 8192 else True
    for key in ("poly_degree", "coeff_modulus_bits", "scale_bits", "depth", "max_abs_error_int", "galois_steps"):
        assert key in p
    # the last message plus its error stays below q0/2: no wrap-around past the first prime
    assert p["q0_headroom_bits"] > 0.5
    assert p["depth"] == 3 and len(p["coeff_modulus_bits"]) == 5


def test_simulate_is_keyless_and_exact(digits, digits_latency):
    _, qm, x, _ = digits
    report = digits_latency.simulate(x[:5])
    assert report.ok and not report.reasons
    np.testing.assert_array_equal(report.output, qm.forward_int(qm.quantize_input(x[:5])))
    assert report.details["max_abs_error_int"] == digits_latency.parameters()["max_abs_error_int"]


def test_impossible_requests_raise_before_keys(digits):
    qm = digits[1]
    with pytest.raises(ParameterError):
        secquant.compile(qm, "ckks", precision_bits=50)
    with pytest.raises(ParameterError):
        secquant.compile(qm, "ckks", poly_degree=4096)
    with pytest.raises(ConfigError):
        secquant.compile(qm, "ckks", security=80)
    with pytest.raises(ConfigError):
        secquant.compile(qm, "ckks", plain_modulus=257)
    with pytest.raises(ConfigError):
        secquant.compile(qm, "ckks", mode="sideways")


def test_inputs_outside_the_bounds_are_refused(digits_latency):
    client = digits_latency.client()
    with pytest.raises(InputRangeError):
        client.encrypt(np.full((1, 64), 10_000, dtype=np.int64))
    with pytest.raises(ConfigError):
        client.encrypt(np.zeros((1, 64)))


def test_stages_merge_linear_ops_and_shift_costs_no_level(digits):
    """Square -> Flatten -> Square makes a weightless SHIFT stage; conv/pool/flatten/linear merge into one."""
    import torch
    from torch import nn

    from secquant.backends.ckks.stages import StageKind, build_stages
    from secquant.nn import Square

    _, _, x, _ = digits
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 8), Square(), nn.Flatten(), Square(), nn.Linear(8, 10)).eval()
    qm = secquant.quantize_model(net, x[:256])
    kinds = [(s.kind, s.shift) for s in build_stages(qm)]  # the flatten alone is a shift
    assert kinds == [(StageKind.AFFINE, False), (StageKind.SQUARE, False), (StageKind.AFFINE, True),
                     (StageKind.SQUARE, False), (StageKind.AFFINE, False)]
    for mode in ("throughput", "latency"):
        em = secquant.compile(qm, "ckks", mode=mode)
        assert em.parameters()["depth"] == (2 if mode == "throughput" else 4)  # throughput: only squares rescale
        xq = qm.quantize_input(x[:8])
        out = np.asarray(em.forward_int(xq), dtype=np.float64)
        ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
        assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]
