"""A THROUGHPUT request split into its slot batches and the parts' results merged (what ``secquant serve
--executor`` does so that one request runs on several workers).

Oracles: the merged result decrypts to ``qm.forward_int`` (BFV bit for bit, over two CRT primes, so the
prime-major order of the frame is exercised; CKKS within ``max_abs_error_int``), and it has the header of
the result the whole request gets.  A request whose header does not match its contents is not split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import secquant
from secquant.backends.seal.wire import BFV_MAGIC, CKKS_MAGIC, frame, unframe
from secquant.errors import ConfigError
from secquant.protocol.inference.split import BatchSplit

pytest.importorskip("tenseal")


def _inputs(tm: Any, n: int) -> np.ndarray:
    return tm.qm.quantize_input(np.concatenate([tm.x_test] * -(-n // len(tm.x_test)))[:n])


def _round_trip(em: Any, xq: np.ndarray) -> tuple[bytes, bytes, int]:
    """(merged result of the split request, result of the whole request, parts)."""
    client, server = em._roles()
    payload = client.encrypt(xq)
    count, parts = BatchSplit.of(em).split(payload)
    merged = BatchSplit.of(em).merge([server.evaluate(p) for p in parts])
    return merged, server.evaluate(payload), count


def test_a_bfv_request_over_two_crt_primes_splits_and_merges_bit_exact(digits_deep: Any) -> None:
    em = secquant.compile(digits_deep.qm, "bfv", mode="throughput")
    assert len(em.parameters()["plain_moduli"]) >= 2
    xq = _inputs(digits_deep, em.backend.batch_size() + 5)
    merged, whole, count = _round_trip(em, xq)
    assert count == 2
    client, _ = em._roles()
    assert np.array_equal(client.decrypt(merged).astype(object), digits_deep.qm.forward_int(xq).astype(object))
    (m_meta, m_blobs), (w_meta, w_blobs) = unframe(merged, "result", BFV_MAGIC), unframe(whole, "result", BFV_MAGIC)
    assert m_meta == w_meta and len(m_blobs) == len(w_blobs)


def test_a_ckks_request_splits_and_merges_within_bound(digits_mlp: Any) -> None:
    em = secquant.compile(digits_mlp.qm, "ckks", mode="throughput")
    xq = _inputs(digits_mlp, 2 * em.backend.batch_size() + 3)
    merged, whole, count = _round_trip(em, xq)
    assert count == 3
    client, _ = em._roles()
    err = np.abs(client.decrypt(merged).astype(np.float64) - digits_mlp.qm.forward_int(xq).astype(np.float64))
    assert float(err.max()) <= em.parameters()["max_abs_error_int"]
    (m_meta, m_blobs), (w_meta, w_blobs) = unframe(merged, "result", CKKS_MAGIC), unframe(whole, "result", CKKS_MAGIC)
    assert m_meta == w_meta and len(m_blobs) == len(w_blobs)


def test_one_batch_and_mismatched_headers_are_not_split(digits_mlp: Any) -> None:
    em = secquant.compile(digits_mlp.qm, "bfv", mode="throughput")
    client, server = em._roles()
    split = BatchSplit.of(em)
    one = client.encrypt(_inputs(digits_mlp, 7))
    count, parts = split.split(one)
    assert count == 1 and list(parts) == [one]
    two = client.encrypt(_inputs(digits_mlp, em.backend.batch_size() + 1))
    meta, blobs = unframe(two, "batch", BFV_MAGIC)
    for lie in ({"batches": 3}, {"n": 3 * em.backend.batch_size()}, {"per_prime": len(blobs) - 1}, {"n": "x"}):
        crafted = frame("batch", {**meta, **lie}, blobs, BFV_MAGIC)
        count, parts = split.split(crafted)
        assert count == 1 and list(parts) == [crafted]  # sent whole: the server role refuses it with its own error
        with pytest.raises(ConfigError):
            server.evaluate(crafted)
    for garbage in (b"", b"not a frame", two[:100]):
        assert split.split(garbage)[0] == 1


def test_results_that_do_not_belong_together_are_refused(digits_mlp: Any) -> None:
    em = secquant.compile(digits_mlp.qm, "ckks", mode="throughput")
    other = secquant.compile(digits_mlp.qm, "ckks", mode="throughput", poly_degree=16384)
    assert em.parameters()["primes"] != other.parameters()["primes"]
    results = []
    for compiled in (em, other):
        client, server = compiled._roles()
        results.append(server.evaluate(client.encrypt(_inputs(digits_mlp, 3))))
    with pytest.raises(ConfigError, match="do not belong together"):
        BatchSplit.of(em).merge(results)
