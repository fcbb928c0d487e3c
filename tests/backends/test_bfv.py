"""BFV backend: bit-exact against ``qm.forward_int`` with real TenSEAL/SEAL ciphertexts.

Oracle: the integer reference ``QuantizedModel.forward_int``; every comparison
is exact (no tolerance), on at least 200 real test inputs per model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import secquant
from secquant.errors import ConfigError, KeyMaterialError, ModulusOverflowError, ParameterError

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
    assert p["mode"] == "latency" and p["galois_keys"] == len(p["rotation_steps"]) > 0
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
