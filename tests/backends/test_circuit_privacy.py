"""Circuit privacy of BFV responses: re-randomization and noise flooding (issue 13 §2).

Oracles: ``QuantizedModel.forward_int`` (a finished response still decodes
bit-exactly); SEAL's own noise budget as the client measures it (flooding
spends about its reserve and leaves the margin); and our own auditor, with the
server framed as a mechanism of its weights (two weight sets with identical
outputs on the query; the output is what the client computes from the raw
decrypted phase). With flooding off the auditor must tell the weights apart,
with it on it must not.

False-failure rates: the deterministic checks have none. The audits run at
confidence 1 - 1e-6, so the flooded case fails falsely with probability at
most 1e-6 + 2 * 2**-40 per run; the unflooded case fails only if the auditor
misses a gap of several bits of budget, which it cannot at these counts.
"""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.backends.seal.privacy import CircuitPrivacy, flood_bound_bits, flood_reserve_bits, flooding_bits
from secquant.errors import ConfigError

pytest.importorskip("tenseal")


def test_option_is_typed():
    from secquant.backends.bfv.options import BFVOptions

    assert BFVOptions().circuit_privacy is CircuitPrivacy.OFF
    assert BFVOptions(circuit_privacy="rerandomize").circuit_privacy is CircuitPrivacy.RERANDOMIZE
    assert BFVOptions(circuit_privacy="flood").circuit_privacy is CircuitPrivacy.FLOOD
    with pytest.raises(ConfigError):
        BFVOptions(circuit_privacy="flood-please")


def test_flooding_bits_known_answer():
    assert flooding_bits(20, 40, 1) == 60
    assert flooding_bits(20, 40, 4096) == 72
    with pytest.raises(ConfigError):
        flooding_bits(-1)
    assert flood_reserve_bits(8192) == 40 + 13 + 2
    # q of 100 bits, t of 20 bits, 60 bits of budget: E = 2**(100 - 20 - 61) = 2**19, B = E * N * 2**40.
    assert flood_bound_bits(100, 1 << 20, 60, 8192) == 19 + 13 + 40
    with pytest.raises(ConfigError, match="needs 55 bits"):
        flood_bound_bits(100, 1 << 20, 54, 8192)


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_bfv_flooded_response_is_exact_and_keeps_the_margin(digits_mlp, mode):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode=mode, circuit_privacy="flood")
    params = em.parameters()
    assert params["circuit_privacy"]["method"] == "flood"
    assert params["circuit_privacy"]["reserved_budget_bits"] == flood_reserve_bits(params["poly_degree"])
    assert params["noise_margin_bits"] == 10 + flood_reserve_bits(params["poly_degree"])
    client = em.client()
    server = em.server(client.public_material())
    xq = qm.quantize_input(digits_mlp.x_test[:4])
    out = client.decrypt(server.evaluate(client.encrypt(xq)))
    np.testing.assert_array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))
    assert client.last_noise_budget >= 10  # the user's margin survives the flood


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_bfv_rerandomized_response_is_exact_and_fresh(digits_mlp, mode):
    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode=mode, circuit_privacy="rerandomize")
    xq = qm.quantize_input(digits_mlp.x_test[:8])
    out = em.forward_int(xq)
    np.testing.assert_array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))


@pytest.mark.parametrize("privacy", ["off", "rerandomize"])
def test_bfv_response_randomness(digits_mlp, privacy):
    """Same payload twice: OFF answers byte-identically (evaluation is deterministic, the
    response's randomness is the client's), RERANDOMIZE answers with fresh randomness."""
    import time

    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="latency", circuit_privacy=privacy)
    client = em.client()
    server = em.server(client.public_material())
    xq = qm.quantize_input(digits_mlp.x_test[:2])
    payload = client.encrypt(xq)
    t0 = time.perf_counter()
    r1 = server.evaluate(payload)
    elapsed = time.perf_counter() - t0
    r2 = server.evaluate(payload)
    assert (r1 != r2) is (privacy == "rerandomize"), f"evaluate took {elapsed:.3f} s"
    np.testing.assert_array_equal(np.asarray(client.decrypt(r1), dtype=object),
                                  np.asarray(qm.forward_int(xq), dtype=object))


def _weight_pair():
    """Two linear models whose outputs agree on the query (its second feature is 0) but whose weights do not."""
    import torch
    from torch import nn

    from secquant import quantize_model

    calib = np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, -0.5], [-0.5, 0.5]], dtype=np.float32)

    def linear(w2: float) -> nn.Module:
        m = nn.Linear(2, 1)  # one output: one response ciphertext per query
        with torch.no_grad():
            m.weight.copy_(torch.tensor([[1.0, w2]]))
            m.bias.zero_()
        return m

    q0, q1 = (quantize_model(linear(w), calib, bits=6) for w in (0.0, 1.0))
    query = q1.quantize_input(np.array([[0.75, 0.0]], dtype=np.float32))
    return q0, q1, query


@pytest.mark.slow
@pytest.mark.parametrize("privacy", ["off", "flood"])
def test_auditor_tells_weights_apart_only_without_flooding(privacy):
    """The server as a mechanism of its weights: W0 and W1 answer the query identically; the client sees
    SEAL's invariant noise budget of the response, a function of the raw decrypted phase."""
    from secquant.audit import audit_mechanism
    from secquant.backends.bfv.server import BFVServer

    q0, q1, query = _weight_pair()
    assert np.array_equal(np.asarray(q0.forward_int(query), dtype=object), np.asarray(q1.forward_int(query), dtype=object))
    assert not np.array_equal(q0.nodes[0].op.arrays()["weight"], q1.nodes[0].op.arrays()["weight"])
    em1 = secquant.compile(q1, "bfv", mode="throughput", circuit_privacy=privacy)
    em0 = secquant.compile(q0, "bfv", mode="throughput", circuit_privacy=privacy)
    client = em1.client()
    # Same public parameters (W1's): the weights are the only difference between the two servers.
    servers = {w: BFVServer(em1.backend.params, em.backend.stages, 2, client.public_material(), CircuitPrivacy(privacy))
               for w, em in (("W0", em0), ("W1", em1))}

    def mechanism(weights, rng, n):
        out = []
        for _ in range(n):
            client.decrypt(servers[weights].evaluate(client.encrypt(query)))
            out.append(client.last_noise_budget)
        return np.asarray(out, dtype=np.int64)

    result = audit_mechanism(mechanism, "W0", "W1", epsilon=0.0, delta=0.0, samples=1000,
                             confidence=1 - 1e-6, seed=0, batch_size=256, name=f"bfv-{privacy}")
    if privacy == "off":
        assert result.violation and result.epsilon_lower_bound > 1.0, result
    else:
        assert not result.violation and result.epsilon_lower_bound <= 0.0, result
