"""Integer ops: exact kernels against torch and Python ints; interval arithmetic is sound."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from secquant.quant import exact
from secquant.quant.intops import (
    IntAdd,
    IntConcat,
    IntConv1d,
    IntConv2d,
    IntLinear,
    IntPoly,
    IntRequantize,
    IntScale,
    IntSquare,
    IntSumPool2d,
    OpKind,
)
from secquant.quant.requantize import choose_multiplier
from tests.quant.reference import naive_merge, naive_op, naive_requantize


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), stride=st.integers(1, 2), pad=st.integers(0, 2), k=st.integers(1, 3))
def test_conv_kernel_matches_torch(seed: int, stride: int, pad: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-200, 200, (2, 2, 7, 6))
    w = rng.integers(-100, 100, (3, 2, k, k))
    ours = exact.conv2d(x, w, (stride, stride), (pad, pad), 10**9)
    ref = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                                     stride=stride, padding=pad).numpy()
    np.testing.assert_array_equal(ours, ref)


def test_big_integer_paths_are_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**40), 2**40, (3, 5)).astype(object)
    w = rng.integers(-(2**40), 2**40, (4, 5)).astype(object)
    out = exact.matmul(x, w, 2**90)
    assert out.dtype == object
    expected = [[sum(int(x[i, j]) * int(w[k, j]) for j in range(5)) for k in range(4)] for i in range(3)]
    assert out.tolist() == expected


def _random_ops(rng: np.random.Generator):
    return [
        ((6,), IntLinear(name="l", weight=rng.integers(-9, 9, (4, 6)), bias=rng.integers(-50, 50, 4))),
        ((2, 5, 5), IntConv2d(name="c", weight=rng.integers(-9, 9, (3, 2, 3, 3)), bias=rng.integers(-9, 9, (3, 1, 1)),
                              stride=(2, 2), padding=(1, 1))),
        ((2, 4, 4), IntSumPool2d(name="p", kernel=(2, 2), stride=(2, 2))),
        ((5,), IntSquare(name="s")),
        ((5,), IntPoly(name="q", coeffs=rng.integers(-20, 20, (4, 5)))),
        ((2, 7), IntConv1d(name="c1", weight=rng.integers(-9, 9, (3, 2, 3)), bias=rng.integers(-9, 9, (3, 1)),
                           stride=2, padding=1)),
        ((3, 2, 2), IntScale(name="b", multiplier=rng.integers(-3, 4, (3, 1, 1)), bias=rng.integers(-40, 40, (3, 1, 1)))),
        ((3, 2), IntRequantize(name="r", multiplier=rng.integers(0, 2**15, (3, 1)), shift=rng.integers(0, 20, (3, 1)),
                               limit=rng.integers(1, 2**12, (3, 1)))),
    ]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_interval_and_partial_bounds_are_sound(seed: int) -> None:
    """For random boxes and random points inside them, outputs stay inside the computed interval."""
    rng = np.random.default_rng(seed)
    for shape, op in _random_ops(rng):
        a, b = rng.integers(-30, 30, shape), rng.integers(-30, 30, shape)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        out_lo, out_hi = op.interval(lo.astype(object), hi.astype(object))
        partial = op.partial_bound(np.maximum(np.abs(lo), np.abs(hi)).astype(object))
        for _ in range(20):
            x = rng.integers(lo, hi + 1)
            y = np.asarray(naive_op(op, x), dtype=object)
            assert np.all(y >= out_lo) and np.all(y <= out_hi), op.kind
            assert np.all(np.abs(y) <= partial), op.kind
            np.testing.assert_array_equal(op.forward(x[None], 10**12)[0].astype(object), y)


def test_requantize_rounds_half_up_and_clips_exactly() -> None:
    """Known answers of y = clip(floor((x·M + 2**(s-1)) / 2**s), ±L): ties go to +inf, s = 0 multiplies."""
    op = IntRequantize(name="r", multiplier=np.array([1, 3, 5]), shift=np.array([1, 2, 0]), limit=np.array([9, 9, 30]))
    x = np.array([[-3, -2, 7], [3, 2, -7], [-1, 1, 0]])
    # column 0: x/2 -> -1.5 -> -1, 1.5 -> 2, -0.5 -> 0;  column 1: 3x/4 -> -1.5 -> -1, 1.5 -> 2, 0.75 -> 1;
    # column 2: 5x -> ±35, clipped to ±30
    np.testing.assert_array_equal(op.forward(x, 100), [[-1, -1, 30], [2, 2, -30], [0, 1, 0]])
    assert op.saturates(np.array([-7, -7, -7]), np.array([7, 7, 6])) and not op.saturates(np.array([-7, -7, -6]),
                                                                                            np.array([7, 7, 6]))
    big = np.array([[2**80 + 2**9 - 1, -(2**80) - 2**9]], dtype=object)
    wide = IntRequantize(name="w", multiplier=np.array([3, 3]), shift=np.array([10, 10]), limit=np.array([2**100, 2**70]))
    out = wide.forward(big, 2**83)
    assert out.tolist() == [[naive_requantize(int(v), 3, 10, int(lim)) for v, lim in zip(big[0], wide.limit)]]
    assert out[0, 1] == -(2**70)  # clipped; the first is not
    assert wide.kind is OpKind.REQUANTIZE and wide.kind == "requantize" and f"{wide.kind}" == "requantize"


@settings(max_examples=60, deadline=None)
@given(bound=st.integers(1, 2**200), limit=st.sampled_from([7, 127, 2**15 - 1]), bits=st.integers(2, 31))
def test_chosen_multiplier_keeps_the_bound_and_is_tight(bound: int, limit: int, bits: int) -> None:
    m, s = choose_multiplier(bound, limit, bits)
    if bound <= limit:
        assert (m, s) == (1, 0)
        return
    assert 2 ** (bits - 1) <= m < 2**bits and s >= 1
    assert bound * m <= limit * 2**s  # |x| <= bound  =>  |x·M/2**s| <= limit
    assert bound * (m + 1) > limit * 2**s  # the largest M at this shift


def test_padded_convolution_past_two_to_the_63_is_exact() -> None:
    """Zero padding of Python-int tensors must not insert int64 zeros (they overflow in the products)."""
    rng = np.random.default_rng(1)
    x = (rng.integers(-9, 9, (1, 2, 4, 4)).astype(object) * 2**70)
    w = rng.integers(-9, 9, (2, 2, 3, 3))
    out = exact.conv2d(x, w, (1, 1), (1, 1), 2**80)
    op = IntConv2d(name="c", weight=w, bias=np.zeros((2, 1, 1), np.int64), padding=(1, 1))
    assert out.tolist() == [naive_op(op, x[0])]


def test_merge_ops_against_the_reference() -> None:
    rng = np.random.default_rng(2)
    add = IntAdd(name="a", weights=rng.integers(-50, 50, (2, 3, 1, 1)))
    cat = IntConcat(name="c", inputs=2, axis=0)
    xs = [rng.integers(-30, 30, (4, 3, 2, 2)) for _ in range(2)]
    for op in (add, cat):
        out = op.apply(xs, 10**6)
        for i in range(4):
            assert out[i].tolist() == naive_merge(op, [x[i] for x in xs])
        lo, hi = op.interval_of([np.full((3, 2, 2), -30, object)] * 2, [np.full((3, 2, 2), 29, object)] * 2)
        assert np.all(out >= lo) and np.all(out <= hi)
    assert add.shape_of([(3, 2, 2)] * 2) == (3, 2, 2) and cat.shape_of([(3, 2, 2), (1, 2, 2)]) == (4, 2, 2)
