"""Issue 13 §3: BFV and CKKS servers add release noise to their encrypted outputs.

Oracles: ``qm.forward_int`` (the released minus the exact outputs is the
noise); the proven noise bound ``ceil(42σ) + 2`` (every draw within it); the
policy's spread; the CRT recombination (noise drawn per prime instead of once
per slot would decode to garbage, which the client's widened bound refuses).

Statistical checks (noise comes from ``secrets``, so no seed): on N >= 1,000
draws of σ = 4, the sample standard deviation within ±15 % of σ (> 6 of its
standard deviations σ/√(2N)) and the mean within 5σ/√N of 0: false-failure rate
below 1e-6 per test.  "Some of 80 outputs are noisy" fails with probability
0.1**80 (a draw is 0 with probability ≈ 0.10).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.release import check_modulus_with_noise, modulus_with_noise, noise_bound
from secquant.data import load_dataset
from secquant.dp.release import DiscreteGaussianLogits, RoundedLogits, TopLabel
from secquant.errors import ConfigError, ModulusOverflowError
from secquant.protocol.errors import ReleaseUnsupportedError

SIGMA = 4.0
POLICY = DiscreteGaussianLogits(SIGMA, resolution_bits=0)
BOUND = noise_bound(POLICY)


@pytest.fixture(scope="module")
def linear_qm() -> secquant.QuantizedModel:
    """Digits 64 -> 10, 6-bit: its outputs fill its modulus window, and CKKS decodes it exactly."""
    torch.manual_seed(0)
    d = load_dataset("digits")
    return secquant.quantize_model(nn.Sequential(nn.Linear(64, 10)), d.x_train, bits=6)


@pytest.fixture(scope="module")
def square_qm() -> secquant.QuantizedModel:
    """Digits 64 -> 16 -> Square -> 10, 6-bit: BFV latency needs CRT (several plaintext primes)."""
    from secquant.nn import Square

    torch.manual_seed(0)
    d = load_dataset("digits")
    return secquant.quantize_model(nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10)), d.x_train, bits=6)


@pytest.fixture(scope="module")
def inputs(linear_qm):
    return linear_qm.quantize_input(load_dataset("digits").x_test[:120])


def _spread_ok(noise: np.ndarray) -> None:
    flat = np.asarray(noise, dtype=np.float64).reshape(-1)
    assert flat.size >= 1000
    assert np.max(np.abs(flat)) <= BOUND
    assert abs(flat.std() - SIGMA) <= 0.15 * SIGMA, flat.std()
    assert abs(flat.mean()) <= 5 * SIGMA / np.sqrt(flat.size), flat.mean()


def test_noise_bound_known_answer_and_modulus_widening(linear_qm) -> None:
    assert BOUND == 42 * 4 + 2
    assert modulus_with_noise(linear_qm, 0) == linear_qm.modulus_needed
    out = linear_qm.bounds().output
    lo, hi = int(np.min(out.lo)) - BOUND, int(np.max(out.hi)) + BOUND
    needed = max(2 * hi, 2 * -lo + 1)  # the window (-p/2, p/2] holds [lo, hi]
    assert modulus_with_noise(linear_qm, BOUND) == needed
    check_modulus_with_noise(linear_qm, needed, BOUND)
    with pytest.raises(ModulusOverflowError, match="release noise") as info:
        check_modulus_with_noise(linear_qm, linear_qm.modulus_needed, BOUND)  # holds the model, not the noise
    assert info.value.modulus_needed == needed


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
@pytest.mark.parametrize("policy", [RoundedLogits(-2), TopLabel(), DiscreteGaussianLogits(SIGMA)])
def test_what_a_ciphertext_cannot_release_is_refused(linear_qm, scheme, policy) -> None:
    with pytest.raises(ReleaseUnsupportedError, match="cannot apply") as info:
        secquant.compile(linear_qm, scheme, release=policy)
    assert isinstance(info.value, ConfigError)


def test_bfv_throughput_adds_the_policy_noise(linear_qm, inputs) -> None:
    em = secquant.compile(linear_qm, "bfv", mode="throughput", release=POLICY)
    params = em.parameters()
    assert params["release"]["noise_bound"] == BOUND and "CRT" in params["release"]["noise"]
    assert em.backend.params.total_plain_modulus >= modulus_with_noise(linear_qm, BOUND)
    exact = np.asarray(linear_qm.forward_int(inputs), dtype=np.int64)
    first = np.asarray(em.forward_int(inputs), dtype=np.int64)
    _spread_ok(first - exact)
    again = np.asarray(em.forward_int(inputs[:10]), dtype=np.int64)
    assert np.count_nonzero(again != first[:10]) > 0.7 * again.size  # fresh noise per query


def test_bfv_latency_noise_is_shared_by_every_crt_prime(square_qm, inputs) -> None:
    em = secquant.compile(square_qm, "bfv", mode="latency", release=POLICY)
    assert len(em.backend.params.plain_moduli) >= 2, "the test needs the CRT path"
    exact = np.asarray(square_qm.forward_int(inputs[:8]), dtype=object)
    noise = (np.asarray(em.forward_int(inputs[:8]), dtype=object) - exact).astype(np.int64)
    assert np.max(np.abs(noise)) <= BOUND and np.count_nonzero(noise) > 0


def test_planted_bug_noise_drawn_per_prime_is_caught(square_qm, inputs, monkeypatch) -> None:
    """Planted bug: a fresh draw under every CRT prime recombines to values far past the noise bound,
    so the check of the test above fails on it."""
    from secquant.backends.bfv.server import BFVServer

    em = secquant.compile(square_qm, "bfv", mode="latency", release=POLICY)
    original = BFVServer._add_noise

    def per_prime(self, prog, noise, k, ct):
        return original(self, prog, {}, k, ct)  # forgets the draws of the other primes

    monkeypatch.setattr(BFVServer, "_add_noise", per_prime)
    exact = np.asarray(square_qm.forward_int(inputs[:4]), dtype=object)
    noise = np.asarray(em.forward_int(inputs[:4]), dtype=object) - exact
    assert max(abs(int(v)) for v in noise.reshape(-1)) > BOUND


def test_client_spec_carries_the_widened_bound(linear_qm) -> None:
    from secquant.backends.bfv.backend import BFVBackend
    from secquant.backends.ckks.backend import CKKSBackend

    bfv = secquant.compile(linear_qm, "bfv", mode="latency", release=POLICY)
    assert BFVBackend.client_from_spec(bfv.client_spec()).params.noise_bound == BOUND
    plain = secquant.compile(linear_qm, "ckks", mode="throughput")
    noisy = secquant.compile(linear_qm, "ckks", mode="throughput", release=POLICY)
    before = CKKSBackend.client_from_spec(plain.client_spec()).plan.output_bound
    after = CKKSBackend.client_from_spec(noisy.client_spec()).plan.output_bound
    assert after == pytest.approx(before + BOUND)


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_ckks_adds_the_policy_noise_within_its_stated_error(linear_qm, inputs, mode) -> None:
    em = secquant.compile(linear_qm, "ckks", mode=mode, release=POLICY)
    params = em.parameters()
    assert params["release"]["noise_bound"] == BOUND
    n = len(inputs) if mode == "throughput" else 6
    exact = np.asarray(linear_qm.forward_int(inputs[:n]), dtype=np.int64)
    noise = np.asarray(em.forward_int(inputs[:n]), dtype=np.int64) - exact
    assert np.max(np.abs(noise)) <= BOUND + params["max_abs_error"] + 0.5
    if mode == "throughput":
        assert params["max_abs_error"] < 0.5  # rounding recovers y + e exactly: the spread is the policy's
        _spread_ok(noise)
    else:
        assert np.count_nonzero(noise) > 0


def _neighbours():
    """A one-output linear model and two queries whose exact outputs differ by the smallest step c > 0."""
    from secquant import quantize_model

    calib = np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, -0.5], [-0.5, 0.5]], dtype=np.float32)
    m = nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 0.0]]))
        m.bias.zero_()
    qm = quantize_model(m, calib, bits=6)
    grid = np.stack([np.linspace(-1, 1, 129), np.zeros(129)], axis=1).astype(np.float32)
    xq = qm.quantize_input(grid)
    ys = np.asarray(qm.forward_int(xq), dtype=np.int64).reshape(-1)
    order = np.argsort(ys)
    gaps = np.diff(ys[order])
    i = int(np.argmin(np.where(gaps > 0, gaps, np.iinfo(np.int64).max)))
    return qm, xq[order[i]:order[i] + 1], xq[order[i + 1]:order[i + 1] + 1], int(gaps[i])


@pytest.mark.parametrize("noisy", [True, False])
def test_auditor_checks_the_bfv_release_claim(noisy) -> None:
    """The server as a mechanism of the query: two queries whose outputs differ by c steps, released under
    ``DiscreteGaussianLogits(σ = 2c, sensitivity = c)``; the client sees the decrypted integer.  The
    claimed (ε, δ) must survive the auditor (false-failure rate <= 1e-6, its confidence); with the noise
    planted away it must not."""
    from secquant.audit import audit_mechanism

    qm, x0, x1, c = _neighbours()
    policy = DiscreteGaussianLogits(2.0 * c, resolution_bits=0, sensitivity=c)
    epsilon, delta = policy.privacy(1)
    em = secquant.compile(qm, "bfv", mode="throughput", release=policy)
    client = em.client()
    server = em.server(client.public_material())
    if not noisy:
        server.release = None  # planted: the server forgets its policy, the claim stays
    slots = int(em.backend.batch_size())

    def mechanism(x, rng, n):
        out = client.decrypt(server.evaluate(client.encrypt(np.repeat(x, n, axis=0))))
        return np.asarray(out, dtype=np.int64).reshape(-1)

    result = audit_mechanism(mechanism, x0, x1, epsilon=epsilon, delta=delta, samples=100_000,
                             confidence=1 - 1e-6, seed=0, batch_size=slots, name=f"bfv-release-{noisy}")
    print(f"c={c} claimed eps={epsilon:.3f} delta={delta} audited lower bound={result.epsilon_lower_bound:.3f}")
    assert result.violation is (not noisy), (result, epsilon)
