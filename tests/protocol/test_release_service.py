"""Issue 13 §3: release policies applied by the service, published in the (signed) service spec.

Oracles: ``policy.apply`` on ``qm.forward_int`` (rounding is deterministic);
for noise, the released minus the exact outputs must stay within the proven
noise bound and have the policy's spread; the typed refusal for combinations
a scheme cannot apply; the (ε, δ) of ``DiscreteGaussianLogits.privacy``.

Statistical checks (noise is drawn from ``secrets``, so no seed): with N draws
of σ = 4 the sample standard deviation must lie within ±15 % of σ and the mean
within 5σ/√N of 0.  For N >= 1,000 the standard deviation of the sample
standard deviation is about σ/√(2N) <= 2.3 % of σ, so ±15 % is > 6 of its
standard deviations: false-failure rate below 1e-8 per check, and below 1e-6
for the mean.  A draw is 0 with probability ≈ 0.10 and two draws agree with
probability ≈ 0.07, so "> 80 % of 1,000 outputs noisy" and "> 70 % of 100
repeated outputs differ" sit about 9 standard deviations from their means
(false-failure rate below 1e-15).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from secquant.dp.release import DiscreteGaussianLogits, FullLogits, RoundedLogits, TopLabel
from secquant.protocol import Client
from secquant.protocol.errors import ReleaseUnsupportedError
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.release import parse_release

from .conftest import PLAIN_OK, start_server

SIGMA = 4.0


def _noise_ok(noise: np.ndarray, bound: int) -> None:
    flat = np.asarray(noise, dtype=np.float64).reshape(-1)
    assert flat.size >= 1000
    assert np.max(np.abs(flat)) <= bound
    assert abs(flat.std() - SIGMA) <= 0.15 * SIGMA, flat.std()
    assert abs(flat.mean()) <= 5 * SIGMA / math.sqrt(flat.size), flat.mean()
    assert np.count_nonzero(flat) > 0.8 * flat.size  # noise on (almost) every output, fresh per query


def test_parse_release() -> None:
    assert parse_release("full") == FullLogits()
    assert parse_release("round:3") == RoundedLogits(-3)
    assert parse_release("gaussian:2.5") == DiscreteGaussianLogits(2.5, resolution_bits=0, delta=1e-5)
    assert parse_release("gaussian:2.5:1e-7") == DiscreteGaussianLogits(2.5, resolution_bits=0, delta=1e-7)
    assert parse_release("lround-2") == RoundedLogits(-2)
    with pytest.raises(Exception, match="unknown release policy"):
        parse_release("gauss")


@pytest.mark.parametrize(("scheme", "policy", "words"), [
    ("bfv", RoundedLogits(-2), "BFV cannot apply"),
    ("ckks", RoundedLogits(-2), "CKKS cannot apply"),
    ("paillier", RoundedLogits(-2), "cannot round"),
    ("plain", TopLabel(), "releases labels"),
    ("plain", DiscreteGaussianLogits(0.5), "finer than one output step"),
])
def test_unsound_combinations_are_refused(scheme, policy, words, digits_linear_qm) -> None:
    with pytest.raises(ReleaseUnsupportedError, match=words):
        ModelBinding.build(digits_linear_qm, scheme, None, policy)


@pytest.fixture()
def roomy_qm(digits_linear_qm):
    """The linear model with a modulus that leaves room above its outputs (plain results live mod p)."""
    return digits_linear_qm.with_modulus(4 * digits_linear_qm.modulus + 1)


def test_plain_needs_room_in_the_modulus(digits_linear_qm) -> None:
    with pytest.raises(ReleaseUnsupportedError, match="with_modulus"):
        ModelBinding.build(digits_linear_qm, "plain", None, RoundedLogits(-3))  # a linear model fills its window


def test_plain_rounding_is_exact(roomy_qm, token, tmp_path, digits) -> None:
    policy = RoundedLogits(-3)
    server, binding = start_server(roomy_qm, "plain", token, tmp_path / "keys", release=policy)
    try:
        with Client(server.url, token=token, floor=PLAIN_OK) as client:
            assert client.release["label"] == policy.label and client.release["max_change_steps"] == 4
            xq = binding.qm.quantize_input(digits.x_test[:50])
            out = client.forward_int(xq)
        exact = binding.qm.forward_int(xq)
        np.testing.assert_array_equal(out, policy.apply(exact, np.random.default_rng(0)))
        assert np.all(out % 8 == 0) and np.max(np.abs(out - exact)) <= 4
    finally:
        server.stop()


def test_plain_noise(roomy_qm, token, tmp_path, digits) -> None:
    policy = DiscreteGaussianLogits(SIGMA, resolution_bits=0)
    server, binding = start_server(roomy_qm, "plain", token, tmp_path / "keys", release=policy)
    try:
        with Client(server.url, token=token, floor=PLAIN_OK) as client:
            xq = binding.qm.quantize_input(digits.x_test[:200])
            noise = client.forward_int(xq) - binding.qm.forward_int(xq)
            bound = client.release["max_change_steps"]
        _noise_ok(noise, bound)
    finally:
        server.stop()


def test_paillier_adds_noise_to_the_ciphertexts(digits_linear_qm, token, tmp_path, digits) -> None:
    """The server adds the noise homomorphically; the client learns the policy and its (ε, δ) from the spec."""
    policy = DiscreteGaussianLogits(SIGMA, resolution_bits=0, delta=1e-6)
    from secquant.signing import generate_signing_keys

    private, public = generate_signing_keys(tmp_path / "op", "op")
    from secquant.protocol.inference import ServiceConfig, create_app
    from secquant.protocol.runner import ServerThread

    binding = ModelBinding.build(digits_linear_qm, "paillier", None, policy)
    server = ServerThread(create_app(binding, ServiceConfig(token=token, cache_dir=str(tmp_path / "keys"),
                                                            sign_key=private))).start()
    try:
        with Client(server.url, token=token, trusted=[public]) as client:  # the promise is signed
            release = client.release
            assert release["policy"] == policy.to_json()
            eps, delta = policy.privacy(10)
            assert release["epsilon_per_query"] == pytest.approx(eps) and release["delta"] == delta
            assert "encrypted outputs" in release["applied"]
            xq = binding.qm.quantize_input(digits.x_test[:100])
            first = client.forward_int(xq)
            second = client.forward_int(xq[:10])  # the same queries again: fresh noise
        exact = binding.qm.forward_int(xq)
        _noise_ok(first - exact, release["max_change_steps"])
        assert np.count_nonzero(first[:10] != second) > 0.7 * second.size
    finally:
        server.stop()


@pytest.mark.slow  # ~25 s on the shared machine: two Paillier rounds for 100 inputs
def test_paillier_noise_with_interactive_rounds(digits_mlp_qm, token, tmp_path, digits) -> None:
    """Two rounds: noise only on the final outputs (the client's Square step sees exact pre-activations)."""
    policy = DiscreteGaussianLogits(SIGMA, resolution_bits=0)
    server, binding = start_server(digits_mlp_qm, "paillier", token, tmp_path / "keys", {"interactive": True},
                                   release=policy)
    try:
        with Client(server.url, token=token) as client:
            xq = binding.qm.quantize_input(digits.x_test[:100])
            noise = client.forward_int(xq) - binding.qm.forward_int(xq)
        _noise_ok(noise, client.release["max_change_steps"])
    finally:
        server.stop()


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_seal_schemes_add_noise_to_the_ciphertexts(digits_linear_qm, token, tmp_path, digits, scheme) -> None:
    """BFV (every CRT prime) and CKKS (at the output scale) add the policy's noise before responding."""
    policy = DiscreteGaussianLogits(SIGMA, resolution_bits=0)
    options = {"mode": "throughput", **({"precision_bits": 24} if scheme == "ckks" else {})}
    server, binding = start_server(digits_linear_qm, scheme, token, tmp_path / "keys", options, release=policy)
    try:
        if scheme == "ckks":  # rounding recovers y + e exactly: what is left is the policy's noise
            assert binding.em.parameters()["max_abs_error"] < 0.5
        with Client(server.url, token=token) as client:
            release = client.release
            assert release["policy"] == policy.to_json() and "encrypted outputs" in release["applied"]
            xq = binding.qm.quantize_input(digits.x_test[:100])
            noise = client.forward_int(xq) - binding.qm.forward_int(xq)
        _noise_ok(noise, release["max_change_steps"])
    finally:
        server.stop()
