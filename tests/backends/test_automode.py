"""``mode="auto"`` (the BFV and CKKS default) and its cost model (issue 12, section 3).

Oracles: the decrypted integers (``qm.forward_int``, bit for bit for BFV,
within the stated bound for CKKS); the layout the backend actually ran in
(``em.backend.options.mode``, which must equal what ``parameters()`` reports);
known answers of the cost arithmetic by hand; and the predictions' ordering
for a model whose slot batch dwarfs the call (8 inputs must never pay for
16,384 slots).
"""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.backends.base import Mode
from secquant.backends.cost import OpCounts, predict_seconds
from secquant.errors import ConfigError

pytest.importorskip("tenseal")


def test_cost_arithmetic_known_answers() -> None:
    """One batch of 2 key switches, 10 products, 1 encryption, 1 decryption at N=8192, L=2, by hand."""
    c = OpCounts(batch=4, poly_degree=8192, primes=2, encryptions=1, decryptions=1, plain_products=10,
                 key_switches=2)
    ms = (10 * 0.08 + 2 * 0.9 + 0.06 + 2 * 1.0 + 0.45) * 2 + 0.5
    assert c.batch_seconds() == pytest.approx(ms / 1000)
    assert predict_seconds(c, 0) == 0 and predict_seconds(c, 4) == pytest.approx(ms / 1000)
    assert predict_seconds(c, 5) == pytest.approx(2 * ms / 1000)  # whole batches
    assert OpCounts(1, 16384, 2, runs=3, key_switches=1).batch_seconds() == pytest.approx(3 * 2 * 0.9 * 2 / 1000)
    with pytest.raises(ConfigError):
        OpCounts(0, 8192, 2)
    with pytest.raises(ConfigError):
        OpCounts(1, 8192, 2, key_switches=-1)
    with pytest.raises(ConfigError):
        predict_seconds(c, -1)


def _run(em: secquant.EncryptedModel, qm: secquant.QuantizedModel, x: np.ndarray) -> np.ndarray:
    xq = qm.quantize_input(x)
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    return out - np.asarray(qm.forward_int(xq), dtype=np.float64)


def test_bfv_auto_runs_few_inputs_in_latency_and_a_full_batch_in_throughput(digits_mlp) -> None:
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv")  # mode="auto" is the default
    assert em.auto is not None and em.parameters()["mode_choice"]["inputs"] is None
    assert not np.any(_run(em, qm, digits_mlp.x_test[:8]))
    choice = em.parameters()["mode_choice"]
    assert choice["mode"] == "latency" == em.backend.options.mode.value == em.parameters()["mode"]
    assert choice["inputs"] == 8 and choice["predicted_seconds"]["latency"] < choice["predicted_seconds"]["throughput"]
    assert "8 input(s)" in choice["reason"]
    slots = em.auto.backend(Mode.THROUGHPUT).batch_size()
    assert slots >= 4096
    full = np.resize(digits_mlp.x_test, (slots, digits_mlp.x_test.shape[1]))
    assert not np.any(_run(em, qm, full))
    assert em.parameters()["mode_choice"]["mode"] == "throughput" == em.backend.options.mode.value
    assert not np.any(_run(em, qm, digits_mlp.x_test[:3]))  # back to latency, with its own keys kept
    assert em.backend.options.mode is Mode.LATENCY


def test_ckks_auto_runs_one_input_in_latency_and_a_full_batch_in_throughput(digits_mlp) -> None:
    qm = digits_mlp.qm
    em = secquant.compile(qm, "ckks")
    err = _run(em, qm, digits_mlp.x_test[:1])
    assert em.backend.options.mode is Mode.LATENCY and np.max(np.abs(err)) <= em.parameters()["max_abs_error"]
    slots = em.auto.backend(Mode.THROUGHPUT).batch_size()
    err = _run(em, qm, np.resize(digits_mlp.x_test, (slots, digits_mlp.x_test.shape[1])))
    assert em.backend.options.mode is Mode.THROUGHPUT and np.max(np.abs(err)) <= em.parameters()["max_abs_error"]


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_eight_inputs_never_pay_for_a_slot_batch(mnist_mlp, scheme: str) -> None:
    """784 input features: a throughput batch encrypts 784 full ciphertexts; 8 inputs go to latency."""
    em = secquant.compile(mnist_mlp.qm, scheme)
    assert em.auto is not None
    choice = em.auto.choose(8)
    assert choice.mode is Mode.LATENCY
    assert em.auto.choose(em.auto.backend(Mode.THROUGHPUT).batch_size()).mode is Mode.THROUGHPUT


def test_explicit_modes_and_direct_backends_keep_one_layout(digits_mlp) -> None:
    from secquant.backends.bfv.backend import BFVBackend
    from secquant.backends.ckks.backend import CKKSBackend

    assert secquant.compile(digits_mlp.qm, "bfv", mode="latency").auto is None
    assert BFVBackend(digits_mlp.qm).options.mode is Mode.THROUGHPUT  # built directly: the former default
    assert CKKSBackend(digits_mlp.qm).options.mode is Mode.LATENCY
    with pytest.raises(ConfigError):
        secquant.compile(digits_mlp.qm, "bfv", mode="fastest")
