"""A gathered first stage whose channels share one patch (``SharedGather``): fewer request ciphertexts.

Oracles: a numpy reference of the hybrid product over the client's slots (every
rotation done with ``np.roll``; hypothesis over random sparse matrices, shared or
not, tight or power-of-two blocks), known answers for TenSEAL's MNIST network
(one ciphertext, four diagonals), and the integer model: every request is
decrypted and compared with ``qm.forward_int`` within the plan's stated bound, on
class-based CNNs written the way users write them.  A planted bug (diagonals not
pre-rotated for their giant step) is caught.  A zero weight does not show in the
pattern the client receives, and a malformed client spec is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import secquant
from secquant.backends.base import run_rounds
from secquant.backends.ckks.client_plan import CKKSClientPlan
from secquant.backends.seal.gather import Rows, SharedGather, shared_rows
from secquant.backends.seal.layout import gather_cols
from secquant.data import load_dataset
from secquant.errors import ConfigError

sa = pytest.importorskip("tenseal.sealapi")


def _hybrid(g: SharedGather, matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What the server computes, in numpy: baby steps per chunk, giant steps, the fold (rot = roll left)."""
    chunks, pts, lay = g.pack(x.astype(np.float64)), g.plaintext_vectors(matrix), g.bsgs
    acc = np.zeros(g.slots)
    for k in lay.giant_steps:
        inner = np.zeros(g.slots)
        for (c, kk, b), pt in pts.items():
            if kk == k:
                inner += np.roll(chunks[c], -b) * pt
        acc += np.roll(inner, -k * lay.baby)
    for step in g.fold_steps:
        acc = acc + np.roll(acc, -step)
    return acc


def _conv_matrix(weight: np.ndarray, size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The (C_out·P, size²) matrix of a 1-channel convolution, column by column (torch is the oracle)."""
    eye = torch.eye(size * size, dtype=torch.float64).reshape(-1, 1, size, size)
    out = F.conv2d(eye, torch.tensor(weight, dtype=torch.float64), stride=stride, padding=padding)
    return out.reshape(size * size, -1).T.numpy()


@settings(max_examples=60, deadline=None)
@given(n_out=st.integers(1, 40), n_in=st.integers(1, 50), density=st.floats(0.05, 1.0),
       log_slots=st.integers(6, 9), rows=st.sampled_from(Rows), tight=st.booleans(), seed=st.integers(0, 2**16),
       every=st.integers(1, 40))
def test_hybrid_product_equals_the_matrix_product(n_out: int, n_in: int, density: float, log_slots: int,
                                                   rows: Rows, tight: bool, seed: int, every: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((n_out, n_in)) < density, rng.integers(-9, 10, (n_out, n_in)), 0)
    slots = 1 << log_slots
    assume(1 << max(0, n_out - 1).bit_length() <= slots and np.count_nonzero(a) > 0 and every <= n_out)
    g = SharedGather.of(a, slots, rows, tight, every)
    assume(g.block <= slots)
    x = rng.integers(-100, 100, n_in)
    out = _hybrid(g, a, x)
    expected = a @ x
    for copy in range(slots // g.period):  # every block of the output holds the result
        np.testing.assert_array_equal(out[copy * g.period: copy * g.period + n_out], expected)


def test_tutorial_convolution_is_one_ciphertext_and_four_diagonals() -> None:
    """TenSEAL's MNIST conv (4 channels, 7x7, stride 3): 64 patches of 49 pixels fill one ciphertext."""
    rng = np.random.default_rng(0)
    a = _conv_matrix(rng.choice([-1, 1], (4, 1, 7, 7)) * rng.integers(1, 6, (4, 1, 7, 7)), 28, stride=3)
    shared, per_output = SharedGather.of(a, 8192), SharedGather.of(a, 8192, Rows.PER_OUTPUT)
    assert shared.cols.shape == (64, 49) and shared.block == 64 and shared.period == 256
    assert shared.chunks == 1 and per_output.chunks == 2
    assert shared.bsgs.diagonals == (0, 64, 128, 192) and shared.plaintexts == 4
    assert len(shared.rotation_steps) == 2 + 5  # one baby, one giant step, then the fold of 32 blocks


def test_a_zero_weight_does_not_show_in_the_pattern() -> None:
    """Rows are unions of nesting patterns: a kernel weight of zero in one channel, where another channel
    reads the whole patch, leaves the client's layout unchanged (the per-output pattern shows it)."""
    w = np.random.default_rng(1).integers(1, 6, (3, 1, 3, 3))
    full = SharedGather.of(_conv_matrix(w, 8), 4096)
    w[1, 0, 1, 1] = 0  # channel 1 no longer reads its patch centre
    zeroed = _conv_matrix(w, 8)
    assert not np.array_equal(gather_cols(zeroed), gather_cols(_conv_matrix(np.abs(w) + 1, 8)))
    shared = SharedGather.of(zeroed, 4096)
    np.testing.assert_array_equal(shared.cols, full.cols)
    np.testing.assert_array_equal(shared.rows, full.rows)
    cols, rows = shared_rows(gather_cols(zeroed))
    assert cols.shape == (36, 9) and sorted(set(rows.tolist())) == list(range(36))


def test_zeros_in_every_channel_at_different_taps_still_share_the_patch() -> None:
    """Each channel has a zero at a different tap, so no channel reads the whole patch: rows by position
    (RESIDUE) are still the full patches, and the planner still fits the convolution in one ciphertext."""
    from secquant.backends.base import Mode
    from secquant.backends.ckks.layout import gather_for
    from secquant.backends.ckks.options import CKKSOptions
    from secquant.backends.seal.gather import channel_periods

    w = np.random.default_rng(0).integers(1, 6, (4, 1, 7, 7))
    full = SharedGather.of(_conv_matrix(w, 28, stride=3), 8192, Rows.RESIDUE, every=64)
    for c in range(4):
        w[c, 0, c, c] = 0
    a = _conv_matrix(w, 28, stride=3)
    assert SharedGather.of(a, 8192, Rows.NESTED).cols.shape == (256, 48)  # no channel's set holds another's
    by_position = SharedGather.of(a, 8192, Rows.RESIDUE, every=64)
    np.testing.assert_array_equal(by_position.cols, full.cols)
    assert by_position.cols.shape == (64, 49)
    # 4 channels of 64 positions: 2 or 4 channels of one position per class; a class of 2 or more
    # positions reads more than twice the 48 inputs of one output
    assert channel_periods(gather_cols(a)) == [128, 64]

    class Conv:  # the fields of a Stage that gather_for reads (a bare nonzero pattern, not a support)
        matrix, n_out, n_in, pattern = a, 256, 784, a != 0

    chosen = gather_for(Conv(), CKKSOptions(mode=Mode.LATENCY), 16384, 1024)  # type: ignore[arg-type]
    assert chosen is not None and chosen.chunks == 1
    with pytest.raises(ConfigError, match="every"):
        SharedGather.of(a, 8192, Rows.RESIDUE, every=0)


def test_malformed_layouts_are_refused_with_every_problem() -> None:
    with pytest.raises(ConfigError, match="rows that index"):
        SharedGather(np.zeros((2, 3), dtype=np.int64), np.array([0, 5]), 2, 2, 64)
    with pytest.raises(ConfigError, match="power-of-two period"):
        SharedGather(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]), 2, 3, 64)
    with pytest.raises(ConfigError, match="block >= rows"):
        SharedGather(np.zeros((4, 3), dtype=np.int64), np.array([0, 1]), 2, 2, 64)
    with pytest.raises(ConfigError, match="outside the gather pattern"):
        SharedGather.of(np.eye(4), 64).plaintext_vectors(np.ones((4, 4)))


class ChannelsCNN(nn.Module):
    """A class-based CNN on 8x8 digits: 16 channels of 3x3 (36 positions: a tight block is not a power of two)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3)
        self.fc = nn.Linear(16 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(torch.flatten(h * h, 1))


@pytest.fixture(scope="module")
def cnn() -> tuple[secquant.QuantizedModel, np.ndarray]:
    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), 1, 8, 8)
    torch.manual_seed(0)
    model = ChannelsCNN()
    for p in model.parameters():
        nn.init.uniform_(p, -0.3, 0.3)
    return secquant.quantize_model(model.eval(), x[:256], bits=6), x


def _decrypts_within_bound(em: secquant.EncryptedModel, qm: secquant.QuantizedModel, x: np.ndarray) -> int:
    """Run 3 inputs through real SEAL ciphertexts; return the request bytes of one."""
    client = em.client()
    server = em.server(client.public_material())
    bound = em.parameters()["max_abs_error"]
    for i in range(3):
        xq = qm.quantize_input(x[i:i + 1])
        request = client.encrypt(xq)
        result, _ = run_rounds(client, server, request)
        err = np.abs(np.asarray(client.decrypt(result), float) - np.asarray(qm.forward_int(xq), float)).max()
        assert err <= bound, f"error {err:.3g} past the stated bound {bound:.3g}"
    return len(request)


@pytest.mark.parametrize("transfer", ["balanced", "bytes"])
def test_channels_share_one_ciphertext_end_to_end(cnn, transfer: str) -> None:
    qm, x = cnn
    em = secquant.compile(qm, "ckks", mode="latency", transfer=transfer)
    gather = em.backend.plan.stages[0].gather
    assert gather is not None and gather.rows.size == 576 and gather.cols.shape[0] < 576  # rows are shared
    assert gather.chunks == 1 and em.parameters()["input_ciphertexts_per_input"] == 1
    per_output = SharedGather.of(em.backend.stages[0].matrix, gather.slots, Rows.PER_OUTPUT)
    assert per_output.chunks > 1  # one row per output: 576 outputs in blocks of 1024, 9 inputs each
    size = _decrypts_within_bound(em, qm, x)
    assert abs(size - em.parameters()["wire"]["request_bytes_per_input"]) < 1024


def test_latency_transfer_keeps_one_row_per_output(cnn) -> None:
    """transfer=LATENCY takes the fewest rotations: a row per output, no rotation but the fold."""
    qm, x = cnn
    em = secquant.compile(qm, "ckks", mode="latency", transfer="latency")
    gather = em.backend.plan.stages[0].gather
    assert gather is not None and gather.rows.tolist() == list(range(576))
    assert gather.rotation_steps == gather.fold_steps
    _decrypts_within_bound(em, qm, x)


def test_planted_missing_prerotation_is_caught(cnn, monkeypatch: pytest.MonkeyPatch) -> None:
    """Diagonals not pre-rotated against their giant step: the outputs leave the stated bound."""
    qm, x = cnn
    em = secquant.compile(qm, "ckks", mode="latency", transfer="bytes")
    lay = em.backend.plan.stages[0].gather.bsgs
    assert any(k for k in lay.giant_steps), "the planted bug needs a giant step"
    original = SharedGather.plaintext_vectors

    def unrotated(self: SharedGather, matrix: np.ndarray) -> dict:
        return {key: np.roll(v, -self.bsgs.baby * key[1]) for key, v in original(self, matrix).items()}

    monkeypatch.setattr(SharedGather, "plaintext_vectors", unrotated)
    with pytest.raises(AssertionError, match="past the stated bound"):
        _decrypts_within_bound(em, qm, x)


def test_client_spec_carries_rows_and_block_and_refuses_bad_ones(cnn) -> None:
    qm, _ = cnn
    em = secquant.compile(qm, "ckks", mode="latency")
    plan = CKKSClientPlan.of(em.backend.plan, "f")
    meta, arrays = plan.to_meta()
    back = CKKSClientPlan.from_meta(meta, arrays)
    np.testing.assert_array_equal(back.gather.rows, plan.gather.rows)
    assert back.gather.block == plan.gather.block and set(arrays) == {"gather_cols", "gather_rows"}
    assert plan.gather.cols.shape[0] < 576
    bad = dict(arrays, gather_rows=np.full(576, 10**6, dtype=np.int64))  # past every row
    with pytest.raises(ConfigError):
        CKKSClientPlan.from_meta(meta, bad)
    with pytest.raises(ConfigError):
        CKKSClientPlan.from_meta(dict(meta, gather_block=1), arrays)  # a block smaller than the rows
    old = {k: v for k, v in meta.items() if k != "gather_block"}  # a spec from before rows were shared:
    old["input_copies"] = 2  # one row per output took two ciphertexts
    legacy = CKKSClientPlan.from_meta(old, {"gather_cols": gather_cols(em.backend.stages[0].matrix)})
    assert legacy.gather.rows.tolist() == list(range(576)) and legacy.gather.block == legacy.gather.period
    assert legacy.gather.chunks == 2


def test_gathered_spec_is_weight_free_and_decrypts(cnn) -> None:
    """The client spec of a shared gather carries the pattern and the rows, never a weight; a client
    built from it alone gets results within the bound."""
    from secquant.backends.base import Scheme
    from secquant.backends.compile import client_from_spec
    from tests.backends.test_client_spec import _arrays_of, assert_model_unreachable, assert_weight_free

    qm, x = cnn
    em = secquant.compile(qm, "ckks", mode="latency", transfer="bytes")
    spec = em.client_spec()
    assert_weight_free(spec, Scheme.CKKS, _arrays_of(em), allowed=("gather_",))
    client = client_from_spec("ckks", bytes(spec))
    assert_model_unreachable(client)
    server = em.server(client.public_material())
    xq = qm.quantize_input(x[:1])
    result, _ = run_rounds(client, server, client.encrypt(xq))
    err = np.abs(np.asarray(client.decrypt(result), float) - np.asarray(qm.forward_int(xq), float)).max()
    assert err <= em.parameters()["max_abs_error"]


def test_plaintexts_too_many_to_keep_are_encoded_when_used(cnn, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the plaintext cache budget the server keeps the diagonals as vectors: same results, within bound."""
    from secquant.backends.ckks import evaluate

    qm, x = cnn
    monkeypatch.setattr(evaluate, "PLAIN_CACHE_BYTES", 0)
    em = secquant.compile(qm, "ckks", mode="latency")
    client = em.client()
    server = em.server(client.public_material())
    prepared = server.evaluator._prepared[0]
    assert prepared and all(isinstance(v, np.ndarray) for v in prepared.values())
    xq = qm.quantize_input(x[:1])
    result, _ = run_rounds(client, server, client.encrypt(xq))
    err = np.abs(np.asarray(client.decrypt(result), float) - np.asarray(qm.forward_int(xq), float)).max()
    assert err <= em.parameters()["max_abs_error"]


@pytest.mark.parametrize("fixture", ["cnn", "digits_mlp"])
def test_bytes_gathers_only_when_that_sends_no_more(fixture: str, request: pytest.FixtureRequest) -> None:
    """transfer=BYTES plans the chain with and without the gather and keeps the fewer bytes: the CNN
    keeps its gather (it rotates less for the same bytes); the digits MLP's dense first layer would
    send 1 KB more gathered, so it does not gather."""
    model = request.getfixturevalue(fixture)
    qm = model[0] if isinstance(model, tuple) else model.qm
    chosen = secquant.compile(qm, "ckks", mode="latency", transfer="bytes")
    plain = secquant.compile(qm, "ckks", mode="latency", transfer="bytes", client_gather=False)
    sent = chosen.parameters()["wire"]["request_bytes_per_input"]
    assert sent <= plain.parameters()["wire"]["request_bytes_per_input"]
    gathered = chosen.backend.plan.stages[0].gather is not None
    assert gathered == (fixture == "cnn")
