"""Slot layouts of the SEAL layer, on plaintext vectors (no encryption; fast).

Oracles: known answers (next powers of two, fold steps); coverage counted
entry by entry (every nonzero of A lies on exactly one used diagonal position,
and in exactly one gathered block slot); and the layouts evaluated with numpy
rotations (``rot(v, s) = np.roll(v, -s)``, what SEAL's left rotation does to a
row) against the exact product ``A @ x``.  Matrices are drawn from a fixed seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from secquant.backends.seal.layout import (
    BSGSLayout,
    GatherLayout,
    dense_bsgs,
    gather_cols,
    next_pow2,
    nonzero_diagonals,
    search_bsgs,
    tile,
)
from secquant.errors import ConfigError


def _rot(v: np.ndarray, s: int) -> np.ndarray:
    return np.roll(v, -s)


def _sparse(rng: np.random.Generator, n_out: int, n_in: int, density: float) -> np.ndarray:
    a = rng.integers(-9, 10, size=(n_out, n_in))
    a[rng.random((n_out, n_in)) > density] = 0
    return a


def _conv_like(n_out: int, n_in: int, window: int, stride: int) -> np.ndarray:
    """Each output reads ``window`` consecutive inputs: the sparsity of a 1-d convolution."""
    a = np.zeros((n_out, n_in), dtype=np.int64)
    for o in range(n_out):
        start = (o * stride) % (n_in - window + 1)
        a[o, start:start + window] = np.arange(1, window + 1) * (1 if o % 2 else -1)
    return a


def _bsgs_eval(lay: BSGSLayout, a: np.ndarray, x: np.ndarray, slots: int) -> np.ndarray:
    """``A x`` the way the evaluators compute it: baby rotations, pre-rotated diagonals, giant rotations, fold."""
    xt = tile(x, lay.period, slots)
    plains = {kb: tile(d, lay.period, slots) for kb, d in lay.prerotated(a).items()}
    y = np.zeros(slots, dtype=np.int64)
    for k in lay.giant_steps:
        inner = sum((_rot(xt, b) * plains[(k, b)] for b in lay.baby_steps if (k, b) in plains),
                    np.zeros(slots, dtype=np.int64))
        y = y + _rot(inner, lay.baby * k)
    for s in lay.fold_steps:
        y = y + _rot(y, s)
    return y


def test_next_pow2_known_answers() -> None:
    answers = {0: 1, 1: 1, 2: 2, 3: 4, 5: 8, 16: 16, 17: 32, 1024: 1024, 1025: 2048}
    assert {n: next_pow2(n) for n in answers} == answers


def test_tile_pads_and_repeats() -> None:
    assert tile(np.array([1, 2, 3]), 4, 12).tolist() == [1, 2, 3, 0] * 3
    assert tile(np.array([5], dtype=object), 2, 4).dtype == object


@pytest.mark.parametrize(("n_out", "n_in", "width"), [(10, 32, 16), (16, 16, 16), (5, 64, 8), (32, 20, 32)])
def test_every_nonzero_lies_on_exactly_one_used_diagonal_position(n_out: int, n_in: int, width: int) -> None:
    rng = np.random.default_rng(n_out * 100 + n_in)
    a = _sparse(rng, n_out, n_in, 0.3)
    period = max(next_pow2(n_in), width)
    diagonals = nonzero_diagonals(a != 0, period, width)
    hits = np.zeros_like(a)
    for i in diagonals:
        for j in range(period):
            r, c = j % width, (j + i) % period
            if r < n_out and c < n_in:
                hits[r, c] += 1
    assert np.array_equal(hits[a != 0], np.ones(np.count_nonzero(a), dtype=hits.dtype))


@pytest.mark.parametrize("keys", [set(), {1, 2, 4}])
def test_bsgs_steps_cover_every_diagonal_exactly_once(keys: set[int]) -> None:
    rng = np.random.default_rng(7)
    a = _sparse(rng, 12, 40, 0.2)
    period = 64
    width = next_pow2(12)
    for lay in (search_bsgs(nonzero_diagonals(a != 0, period, period), period, keys),
                search_bsgs(nonzero_diagonals(a != 0, period, width), period, keys, width=width),
                dense_bsgs(40, 12, period)):
        pairs = [(k, b) for k in lay.giant_steps for b in lay.baby_steps if k * lay.baby + b in lay.diagonals]
        assert sorted(k * lay.baby + b for k, b in pairs) == sorted(lay.diagonals)  # each once
        assert set(lay.prerotated(a)) <= set(pairs)
        assert lay.steps == ({b for b in lay.baby_steps if b} | {k * lay.baby for k in lay.giant_steps if k}
                             | set(lay.fold_steps))


@pytest.mark.parametrize("slots", [64, 256])
def test_bsgs_layouts_compute_the_matrix_product(slots: int) -> None:
    rng = np.random.default_rng(slots)
    a = _sparse(rng, 10, 30, 0.4)
    x = rng.integers(-50, 51, size=30)
    period = next_pow2(30)
    layouts = [dense_bsgs(30, 10, period),
               search_bsgs(nonzero_diagonals(a != 0, period, period), period),
               search_bsgs(nonzero_diagonals(a != 0, period, 16), period, width=16)]
    for lay in layouts:
        y = _bsgs_eval(lay, a, x, slots)
        assert np.array_equal(y[:10], a @ x)
        assert np.array_equal(y, np.tile(y[:lay.width], slots // lay.width))  # output repeats with width


def test_dense_bsgs_known_answers() -> None:
    lay = dense_bsgs(64, 32, 64)
    assert (lay.width, lay.period, lay.baby, lay.giant, lay.blocks) == (32, 64, 8, 4, 2)
    assert lay.fold_steps == [32]
    assert lay.rotations == 7 + 3 + 1
    assert dense_bsgs(784, 10, 1024).fold_steps == [16, 32, 64, 128, 256, 512]


def test_search_prefers_existing_keys() -> None:
    """Diagonals {0, 5, 10, 15}: g = 1 rotates by 5, 10, 15 (3 rotations, 3 keys); g = 2 by 1, 4, 10, 14
    (4 rotations).  With keys for 1 and 4 already made, g = 2 needs 2 new keys: 4 + 2w < 3 + 3w for w > 1."""
    alone = search_bsgs([0, 5, 10, 15], 16, key_weight=10.0)
    assert alone.baby == 1 and alone.steps == {5, 10, 15} and alone.rotations == 3
    shared = search_bsgs([0, 5, 10, 15], 16, keys={1, 4}, key_weight=10.0)
    assert shared.baby == 2 and shared.steps == {1, 4, 10, 14} and shared.rotations == 4


def test_gather_maps_every_nonzero_exactly_once() -> None:
    a = _conv_like(24, 60, 5, 2)
    gather = GatherLayout.of(a, slots=128)
    assert gather.period == 32 and gather.width == 5 and gather.blocks == 4 and gather.chunks == 2
    hits = np.zeros_like(a)
    for c in range(gather.chunks):
        for k in range(gather.blocks):
            col = c * gather.blocks + k
            if col < gather.width:
                for o in range(a.shape[0]):
                    if gather.cols[o, col] >= 0:
                        hits[o, gather.cols[o, col]] += 1
    assert np.array_equal(hits, (a != 0).astype(hits.dtype))


@pytest.mark.parametrize(("slots", "dtype"), [(128, np.int64), (256, np.float64)])
def test_gather_computes_the_matrix_product(slots: int, dtype: type) -> None:
    a: np.ndarray = _conv_like(24, 60, 5, 2).astype(dtype)
    x: np.ndarray = np.random.default_rng(3).integers(-9, 10, size=60).astype(dtype)
    gather = GatherLayout.of(a, slots=slots)
    y: np.ndarray = np.zeros(slots, dtype=dtype)
    for w, v in zip(gather.weights(a), gather.pack(x)):
        y = y + np.asarray(w) * np.asarray(v)
    for s in gather.fold_steps:
        y = y + _rot(y, s)
    assert np.array_equal(y[:24], a @ x)
    assert gather.fold_steps == [32 << s for s in range(int(np.log2(slots // 32)))]


def test_gather_cols_and_refusals() -> None:
    a = np.array([[0, 3, 0, 1], [0, 0, 0, 0], [2, 0, 0, 0]])
    assert gather_cols(a).tolist() == [[1, 3], [-1, -1], [0, -1]]
    cols = gather_cols(a)
    for pattern, period, slots in [(cols, 3, 16), (cols, 2, 16), (cols, 8, 4), (np.zeros(3, dtype=np.int64), 4, 16)]:
        with pytest.raises(ConfigError):
            GatherLayout(pattern, period, slots)
