"""BFV backend: bit-exact against ``qm.forward_int`` with real TenSEAL/SEAL ciphertexts.

Oracle: the integer reference ``QuantizedModel.forward_int``; every comparison
is exact (no tolerance), on at least 200 real test inputs per model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import secquant
from secquant.errors import (
    ConfigError,
    KeyMaterialError,
    ModulusOverflowError,
    ParameterError,
)

pytest.importorskip("tenseal")

N_EXACT = 200


def _exact(tm, n: int = N_EXACT, **options) -> secquant.EncryptedModel:
    em = secquant.compile(tm.qm, "bfv", **options)
    xq = tm.qm.quantize_input(tm.x_test[:n])
    out = em.forward_int(xq)
    ref = tm.qm.forward_int(xq)
    assert out.shape == ref.shape == (n, 10)
    np.testing.assert_array_equal(np.asarray(out, dtype=object), np.asarray(ref, dtype=object))
    return em


def test_digits_mlp_throughput_exact(digits_mlp):
    em = _exact(digits_mlp)
    assert em.parameters()["mode"] == "throughput"
    # the estimate is conservative: the real budget left is at least the estimate
    assert em._client.last_noise_budget >= em.parameters()["noise_budget_estimate"][-1]["budget_bits"]


@pytest.mark.slow
def test_mnist_mlp_throughput_exact(mnist_mlp):
    _exact(mnist_mlp)


@pytest.mark.slow
def test_mnist_cnn_throughput_exact(mnist_cnn):
    em = _exact(mnist_cnn)
    assert em.parameters()["stages"][0].startswith("affine")


def test_crt_model_exact(digits_deep):
    qm = digits_deep.qm
    assert qm.modulus_needed.bit_length() > 60  # no single SEAL prime can hold it
    em = _exact(digits_deep)
    p = em.parameters()
    assert p["crt_primes"] >= 2
    assert p["total_plain_modulus_bits"] >= qm.modulus_needed.bit_length()


def test_digits_mlp_latency_exact(digits_mlp):
    em = _exact(digits_mlp, n=6, mode="latency")
    p = em.parameters()
    assert p["mode"] == "latency" and p["galois_keys"] >= len(p["rotation_steps"]) > 0
    assert em._client.last_noise_budget >= p["noise_budget_estimate"][-1]["budget_bits"]


def test_predict_matches_plaintext(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "bfv")
    x = digits_mlp.x_test[:20]
    np.testing.assert_array_equal(em.predict(x), digits_mlp.qm.predict(x))


def test_forced_small_modulus_raises_before_keys(digits_mlp):
    with pytest.raises(ModulusOverflowError):
        secquant.compile(digits_mlp.qm, "bfv", plain_modulus=257)


def test_forced_modulus_not_batching_prime(digits_mlp):
    big = digits_mlp.qm.modulus_needed * 4  # even, so not prime
    with pytest.raises(ParameterError):
        secquant.compile(digits_mlp.qm, "bfv", plain_modulus=big)


def test_impossible_depth_raises_parameter_error(digits_deep):
    with pytest.raises(ParameterError):
        secquant.compile(digits_deep.qm, "bfv", poly_degree=4096, mode="latency")


def test_unknown_option_and_mode(digits_mlp):
    with pytest.raises(ConfigError):
        secquant.compile(digits_mlp.qm, "bfv", bogus=1)
    with pytest.raises(ConfigError):
        secquant.compile(digits_mlp.qm, "bfv", mode="fast")
    with pytest.raises(ConfigError):
        secquant.compile(digits_mlp.qm, "bfv", security=80)


def test_parameters_json(digits_deep):
    p = secquant.compile(digits_deep.qm, "bfv").parameters()
    text = json.dumps(p)
    assert json.loads(text)["estimated_security_bits"] >= 128
    for key in ("poly_degree", "coeff_modulus_bits", "plain_moduli", "public_context_bytes_per_prime",
                "ciphertext_bytes_uploaded", "noise_budget_estimate", "packing"):
        assert key in p
    assert sum(p["coeff_modulus_bits"]) <= p["max_coeff_bits_at_128"]


def test_server_refuses_secret_key(digits_mlp):
    import tenseal as ts

    from secquant.artifact import encode_artifact, read_artifact

    em = secquant.compile(digits_mlp.qm, "bfv")
    client = em.client()
    _, meta, arrays = read_artifact(client.public_material(), "secquant.BFVPublic")
    leaked = dict(arrays)
    leaked["context0"] = np.frombuffer(client._contexts[0].serialize(save_secret_key=True), dtype=np.uint8)
    with pytest.raises(KeyMaterialError):
        em.server(encode_artifact("secquant.BFVPublic", 1, meta, leaked))
    assert not ts.context_from(arrays["context0"].tobytes()).is_private()


def test_malformed_payloads(digits_mlp):
    em = secquant.compile(digits_mlp.qm, "bfv")
    client = em.client()
    server = em.server(client.public_material())
    with pytest.raises(ConfigError):
        server.evaluate(b"not a payload")
    with pytest.raises(ValueError):
        em.server(b"garbage")
    good = client.encrypt(digits_mlp.qm.quantize_input(digits_mlp.x_test[:3]))
    with pytest.raises(ConfigError):
        server.evaluate(good[:-100])
    with pytest.raises(ConfigError):
        client.decrypt(good)  # a request is not a result


def test_simulate_predicts_success(digits_deep):
    em = secquant.compile(digits_deep.qm, "bfv")
    rep = em.simulate(digits_deep.x_test[:50])
    assert rep.ok, rep.reasons
    ref = digits_deep.qm.forward_int(digits_deep.qm.quantize_input(digits_deep.x_test[:50]))
    np.testing.assert_array_equal(np.asarray(rep.output, dtype=object), np.asarray(ref, dtype=object))
    json.dumps(rep.details)


def test_planted_bug_is_refused_not_returned(digits_mlp, monkeypatch):
    """A server that squares twice (a planted bug) yields values outside the proven bound: refused."""
    from secquant.backends.bfv import evaluate

    real_square = evaluate.square
    monkeypatch.setattr(evaluate, "square", lambda kit, xs: real_square(kit, real_square(kit, xs)))
    em = secquant.compile(digits_mlp.qm, "bfv")
    with pytest.raises(ModulusOverflowError):
        em.forward_int(digits_mlp.qm.quantize_input(digits_mlp.x_test[:64]))


def test_decryption_refuses_a_planted_out_of_bound_value(digits_mlp, monkeypatch):
    """The one checked decryption path: a server that returns encryptions of bound + 1 for output 0.

    The planted value lies inside the plaintext modulus (it decrypts cleanly), so only the bound
    check in ``BFVClient.decrypt`` can refuse it; the other outputs stay exact.
    """
    from secquant.backends.bfv.evaluate import ServerProgram

    top = digits_mlp.qm.bounds().output.max_abs
    real_run = ServerProgram.run_throughput

    def planted(self, xs):
        out = real_run(self, xs)
        bad = self.kit.encrypt_zero()
        self.kit.evaluator.add_plain_inplace(bad, self.kit.constant((top + 1) % self.kit.t))
        return [bad, *out[1:]]

    em = secquant.compile(digits_mlp.qm, "bfv", mode="throughput")  # 8 inputs would run in latency under auto
    assert 2 * (top + 1) < em.backend.params.total_plain_modulus  # bound + 1 decrypts as itself
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:8])
    monkeypatch.setattr(ServerProgram, "run_throughput", planted)
    with pytest.raises(ModulusOverflowError, match="outside the proven output bound"):
        em.forward_int(xq)


def test_plan_parameters_pick_crt_from_bounds(digits_deep):
    from secquant.backends.seal.primes import crt_combine, is_prime

    p = secquant.compile(digits_deep.qm, "bfv").backend.params
    assert all(is_prime(t) and (t - 1) % (2 * p.poly_degree) == 0 for t in p.plain_moduli)
    assert len(set(p.plain_moduli)) == len(p.plain_moduli)
    assert p.total_plain_modulus >= digits_deep.qm.modulus_needed
    # CRT recombination is exact on known answers
    values = np.array([0, 1, -5, p.total_plain_modulus // 2], dtype=object)
    res = [np.mod(values, t) for t in p.plain_moduli]
    back = crt_combine(res, p.plain_moduli)
    np.testing.assert_array_equal(np.mod(values, p.total_plain_modulus), back)


def test_coefficient_primes_match_seal():
    """Plaintext primes are chosen to avoid SEAL's coefficient primes; both searches must agree."""
    from secquant.backends.seal.context import sealapi as seal
    from secquant.backends.seal.primes import primes_1_mod

    sa = seal()
    for n, bits in ((8192, [54, 54, 54]), (16384, [60, 60, 59])):
        ours = []
        for b in sorted(set(bits)):
            ours += primes_1_mod(2 * n, b, bits.count(b))
        theirs = [m.value() for m in sa.CoeffModulus.Create(n, bits)]
        assert sorted(ours) == sorted(theirs)


@pytest.fixture(scope="module")
def digits_poly():
    """Digits 64 -> 16 -> Poly(0.1 - 0.5x + 0.25x^2 + 0.05x^3) -> 10, 6-bit: negative and cubic terms."""
    import torch
    from torch import nn

    from secquant.data import load_dataset
    from secquant.nn import Poly

    from .conftest import TrainedModel, _train

    ds = load_dataset("digits")
    torch.manual_seed(3)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = _train(nn.Sequential(nn.Linear(64, 16), Poly([0.1, -0.5, 0.25, 0.05]), nn.Linear(16, 10)),
                   x, ds.y_train, 30)
    qm = secquant.quantize_model(model, x[:512], bits=6)
    return TrainedModel("digits_poly", model, qm, ds.x_test.reshape(len(ds.x_test), -1), ds.y_test)


def test_poly_activation_exact_both_modes(digits_poly):
    assert any(op.kind == "poly" for op in digits_poly.qm.ops)
    _exact(digits_poly)
    _exact(digits_poly, n=3, mode="latency")
