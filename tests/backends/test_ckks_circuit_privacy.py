"""Circuit privacy of CKKS responses: re-randomization and Gaussian flooding (issue 13 §2).

Oracles: ``qm.forward_int`` within the stated (flood-widened) error bound; the
sizing formula of Li-Micciancio-Schultz-Sorrell 2022 as a known answer; and
our own auditor, with the server framed as a mechanism of its weights: two
weight sets with identical integer outputs on the query, the output being the
raw decoded slot the client sees (:meth:`CKKSClient.decrypt_slots`, before
rounding).  Without flooding the auditor must tell the weights apart; with it,
it must not.

False-failure rates: the deterministic checks have none.  The audits run at
confidence 1 - 1e-6, so the flooded case fails falsely with probability at most
1e-6 plus the flood's distinguishing advantage (2**-30 at the default s = 30);
the unflooded case fails only if the auditor misses a difference of the slot
noise's spread of several times, which it cannot at 60,000 samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.seal.privacy import ckks_flood_error_factor, ckks_flood_sigma_factor
from secquant.data import load_dataset
from secquant.errors import ConfigError, ParameterError


@pytest.fixture(scope="module")
def linear_qm() -> secquant.QuantizedModel:
    torch.manual_seed(0)
    d = load_dataset("digits")
    return secquant.quantize_model(nn.Sequential(nn.Linear(64, 10)), d.x_train, bits=6)


def test_sizing_known_answer() -> None:
    # log2 sigma_f = log2 E + s/2 + log2(64 Q)/2 (LMSS 2022): s = 30, Q = 1 -> 15 + 3 bits.
    assert ckks_flood_sigma_factor(30, 1) == 2.0**18
    assert ckks_flood_sigma_factor(40, 4) == 2.0**20 * 16
    assert ckks_flood_error_factor(30, 1) == 6 * 2.0**18


@pytest.mark.parametrize("bad", [{"circuit_privacy": "loud"}, {"flood_security_bits": 0},
                                 {"flood_security_bits": 30.0}, {"flood_queries": 0}, {"flood_queries": True}])
def test_options_are_typed(linear_qm, bad) -> None:
    with pytest.raises(ConfigError):
        secquant.compile(linear_qm, "ckks", **bad)


@pytest.mark.parametrize(("mode", "precision"), [("throughput", 12), ("latency", 10)])
@pytest.mark.parametrize("privacy", ["rerandomize", "flood"])
def test_finished_responses_stay_within_the_stated_bound(linear_qm, mode, precision, privacy) -> None:
    em = secquant.compile(linear_qm, "ckks", mode=mode, circuit_privacy=privacy, precision_bits=precision)
    params = em.parameters()
    assert params["circuit_privacy"]["method"] == privacy
    xq = linear_qm.quantize_input(load_dataset("digits").x_test[:80 if mode == "throughput" else 3])
    client = em.client()
    raw, _ = client.decrypt_slots(em.server(client.public_material()).evaluate(client.encrypt(xq)))
    deviation = raw - np.asarray(linear_qm.forward_int(xq), dtype=np.float64)
    stated = params["max_abs_error"]
    assert np.abs(deviation).max() <= stated
    if privacy == "flood":
        assert params["circuit_privacy"]["security_bits"] == 30 and params["circuit_privacy"]["queries"] == 1
    if privacy == "flood" and mode == "throughput":
        # The flood dominates: a slot's std is its six-sigma bound / 6, about stated / 6 (800 samples: the
        # sample std is within 20 % with probability 1 - 1e-8).
        assert 0.8 * stated / 6 <= deviation.std() <= 1.2 * stated / 6, (deviation.std(), stated)


def test_flooding_that_cannot_keep_the_target_is_refused(linear_qm) -> None:
    with pytest.raises(ParameterError, match="precision target"):
        secquant.compile(linear_qm, "ckks", mode="latency", circuit_privacy="flood", precision_bits=20)


def _weight_pair():
    """Two linear models, W0 = (1, 1, 0) and W1 = (1, 0, 1), with identical bounds (so identical plans) and
    identical outputs on the query (0.75, 0, 0), but which weigh a different zero input."""
    calib = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.5, -0.5, 0.5], [-0.5, 0.5, -0.5]], dtype=np.float32)

    def linear(w: list[float]) -> nn.Module:
        m = nn.Linear(3, 1)
        with torch.no_grad():
            m.weight.copy_(torch.tensor([w]))
            m.bias.zero_()
        return m

    q0, q1 = (secquant.quantize_model(linear(w), calib, bits=6) for w in ([1.0, 1.0, 0.0], [1.0, 0.0, 1.0]))
    return q0, q1, q1.quantize_input(np.array([[0.75, 0.0, 0.0]], dtype=np.float32))


@pytest.mark.parametrize("privacy", ["off", "rerandomize", "flood"])
def test_auditor_tells_weights_apart_only_without_flooding(privacy) -> None:
    """The client knows the noise of its own encryption of the second feature (it holds the key); without
    flooding, the output's deviation from the integer correlates with it under W0 (which weighs that
    feature) and not under W1.  The mechanism's output is whether the two signs agree."""
    from secquant.audit import audit_mechanism
    from secquant.backends.ckks.server import CKKSServer
    from secquant.backends.ckks.wire import BATCH, fingerprint
    from secquant.backends.seal.context import sealapi
    from secquant.backends.seal.serialize import load_seal
    from secquant.backends.seal.wire import unframe

    q0, q1, query = _weight_pair()
    exact = float(np.asarray(q1.forward_int(query)).reshape(-1)[0])
    assert np.array_equal(np.asarray(q0.forward_int(query)), np.asarray(q1.forward_int(query)))
    ems = [secquant.compile(q, "ckks", mode="throughput", circuit_privacy=privacy, transfer="latency")
           for q in (q0, q1)]
    assert fingerprint(ems[0].backend.plan) == fingerprint(ems[1].backend.plan)  # one client talks to both
    assert ems[0].backend.plan.input_scale == ems[1].backend.plan.input_scale
    client = ems[1].client()
    material = client.public_material()
    servers = {f"W{i}": CKKSServer(em.backend.plan, 3, material) for i, em in enumerate(ems)}

    slots = int(ems[1].backend.batch_size())

    def mechanism(weights, rng, n):
        return np.concatenate([batch(weights, min(slots, n - k)) for k in range(0, n, slots)])

    def batch(weights, n):
        payload = client.encrypt(np.repeat(query, n, axis=0))
        _, blobs = unframe(payload, BATCH)  # the client's own input ciphertexts: feature 2 encrypts 0
        own = load_seal(blobs[1:2], lambda: sealapi().Ciphertext(client.context), client.context, "input")[0]
        noise = client._decode(own)[:n]
        values, _ = client.decrypt_slots(servers[weights].evaluate(payload))
        return (np.sign(values[:, 0] - exact) == np.sign(noise)).astype(np.int64)

    result = audit_mechanism(mechanism, "W0", "W1", epsilon=0.0, delta=0.0, samples=60_000,
                             confidence=1 - 1e-6, seed=0, batch_size=slots,
                             name=f"ckks-{privacy}")
    print(f"{privacy}: audited epsilon lower bound {result.epsilon_lower_bound:.3f}")
    if privacy != "flood":  # fresh randomness alone does not hide the evaluation noise
        assert result.violation and result.epsilon_lower_bound > 0.1, result
    else:
        assert not result.violation, result
