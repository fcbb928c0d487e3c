"""Circuit privacy of SEAL responses (first step: re-randomization, issue 13 §2).

Oracles: ``QuantizedModel.forward_int`` (the re-randomized response still
decodes bit-exactly) and SEAL's own level and byte equality (the response is at
the last level and carries fresh randomness). Deterministic checks: no
false-failure rate. The auditor test of noise flooding is not written yet.
"""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.backends.seal.privacy import CircuitPrivacy, flooding_bits
from secquant.errors import ConfigError

pytest.importorskip("tenseal")


def test_option_is_typed():
    from secquant.backends.bfv.options import BFVOptions

    assert BFVOptions().circuit_privacy is CircuitPrivacy.OFF
    assert BFVOptions(circuit_privacy="rerandomize").circuit_privacy is CircuitPrivacy.RERANDOMIZE
    with pytest.raises(ConfigError):
        BFVOptions(circuit_privacy="flood-please")


def test_flooding_bits_known_answer():
    assert flooding_bits(20, 40, 1) == 60
    assert flooding_bits(20, 40, 4096) == 72
    with pytest.raises(ConfigError):
        flooding_bits(-1)


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
