"""Memory of a throughput round trip: one copy of the request, a ring sized for the call.

* :class:`~secquant.backends.seal.wire.FrameWriter` writes a frame blob by blob;
  what :func:`~secquant.backends.seal.wire.unframe` reads back equals the blobs.
* A client's ``encrypt`` holds one copy of its request, not its blobs and then
  their join: Python's traced peak (tracemalloc sees bytes and numpy buffers,
  not SEAL's pool) stays within 1.3x the request.  Joining a list of blobs, as
  the first version did, peaks at 2x: the planted join below is caught.
* ``inputs_per_call`` sizes the BFV ring for a call of a few hundred inputs;
  results stay bit-exact.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import secquant
from secquant.backends.seal import wire
from secquant.backends.seal.wire import FrameWriter, frame, unframe
from secquant.errors import ConfigError

pytest.importorskip("tenseal")


def test_frame_writer_round_trip_equals_frame() -> None:
    blobs = [b"alpha", b"", bytes(range(256)) * 40, b"\x00" * 7]
    writer = FrameWriter("batch", {"n": 3, "note": "x"}, len(blobs), wire.BFV_MAGIC)
    for b in blobs:
        writer.add(memoryview(b))
    streamed = writer.finish()
    meta, views = unframe(streamed, "batch", wire.BFV_MAGIC)
    assert meta == {"n": 3, "note": "x"} and [bytes(v) for v in views] == blobs
    joined = unframe(frame("batch", {"n": 3, "note": "x"}, blobs, wire.BFV_MAGIC), "batch", wire.BFV_MAGIC)
    assert joined[0] == meta and [bytes(v) for v in joined[1]] == blobs
    with pytest.raises(ConfigError):
        unframe(streamed, "result", wire.BFV_MAGIC)  # the padded header still names its kind


def test_frame_writer_refuses_a_count_it_was_not_told() -> None:
    short = FrameWriter("batch", {}, 2)
    short.add(b"one")
    with pytest.raises(ConfigError, match="1 blobs added, 2 announced"):
        short.finish()
    full = FrameWriter("batch", {}, 1)
    full.add(b"one")
    with pytest.raises(ConfigError):
        full.add(b"two")
    assert unframe(full.finish(), "batch")[0] == {}
    with pytest.raises(ConfigError):
        full.add(b"three")  # spent
    with pytest.raises(ConfigError):
        full.finish()


def _traced_peak(fn) -> tuple[int, object]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        return tracemalloc.get_traced_memory()[1] - base, out
    finally:
        tracemalloc.stop()


def _join_frame(kind, meta, count, magic=wire.CKKS_MAGIC, size_hint=None):
    """The first version's framing: every blob kept, then joined (the planted bug)."""
    blobs: list[bytes] = []

    class Joiner:
        def add(self, blob):
            blobs.append(bytes(blob))

        def finish(self):
            return frame(kind, meta, blobs, magic)

    return Joiner()


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_encrypt_holds_one_copy_of_the_request(digits_mlp, scheme: str, monkeypatch) -> None:
    em = secquant.compile(digits_mlp.qm, scheme, mode="throughput")
    client, _ = em._roles()
    xq = digits_mlp.qm.quantize_input(digits_mlp.x_test[:64])
    peak, payload = _traced_peak(lambda: client.encrypt(xq))
    assert len(payload) > 3_000_000  # large enough that a second copy would show
    assert peak < 1.3 * len(payload), (peak, len(payload))

    module = "secquant.backends.ckks.client" if scheme == "ckks" else "secquant.backends.bfv.wire"
    monkeypatch.setattr(f"{module}.FrameWriter", _join_frame)
    planted_peak, planted = _traced_peak(lambda: client.encrypt(xq))
    assert len(planted) < len(payload)  # exact header, same blobs
    assert planted_peak > 1.8 * len(planted)  # the check above would catch it


def test_inputs_per_call_sizes_the_bfv_ring(mnist_cnn) -> None:
    qm = mnist_cnn.qm
    full = secquant.compile(qm, "bfv", mode="throughput").parameters()
    call = secquant.compile(qm, "bfv", mode="throughput", inputs_per_call=32).parameters()
    assert call["poly_degree"] < full["poly_degree"]
    assert call["request_bytes_per_batch"] < full["request_bytes_per_batch"]
    many = secquant.compile(qm, "bfv", mode="throughput", inputs_per_call=4 * full["poly_degree"]).parameters()
    assert many["poly_degree"] == full["poly_degree"]  # full batches: the per-input choice


def test_a_ring_sized_for_the_call_is_bit_exact(mnist_cnn) -> None:
    qm = mnist_cnn.qm
    em = secquant.compile(qm, "bfv", mode="throughput", inputs_per_call=24)
    xq = qm.quantize_input(mnist_cnn.x_test[:24])
    out = em.forward_int(xq)
    assert np.array_equal(out.astype(object), qm.forward_int(xq).astype(object))


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "256"])
def test_inputs_per_call_is_typed(digits_mlp, value) -> None:
    with pytest.raises(ConfigError, match="inputs_per_call"):
        secquant.compile(digits_mlp.qm, "bfv", inputs_per_call=value)
