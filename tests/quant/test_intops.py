"""Integer ops: exact kernels against torch and Python ints; interval arithmetic is sound."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from secquant.quant import exact
from secquant.quant.intops import IntConv2d, IntLinear, IntPoly, IntSquare, IntSumPool2d
from tests.quant.reference import naive_op


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
