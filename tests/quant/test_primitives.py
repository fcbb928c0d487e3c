"""Known-answer and property tests of Q(x) = round(C·x + d) mod p."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import secquant
from secquant import Domain, OnOverflow, QuantParams, Rounding, centered_lift, dequantize, quantize
from secquant.errors import ConfigError, ModulusOverflowError, SecquantError
from secquant.quant.primitives import modulus_needed, window

# -- known answers -----------------------------------------------------------


def test_textbook_example_is_refused_with_explanation() -> None:
    """C=256, d=128, p=256 on [0, 1): every x >= 0.5 would wrap into small numbers."""
    x = np.array([0.0, 0.25, 0.49, 0.5, 0.75, 0.99])
    with pytest.raises(ModulusOverflowError) as info:
        quantize(x, 256, 128, 256)
    err = info.value
    assert isinstance(err, OverflowError) and isinstance(err, SecquantError)
    assert "Only x in [-0.5, 0.5) fits" in str(err) and "wrap" in str(err)
    assert "x = 0.99 gives 381, whose residue 125 would decode as -0.0117" in str(err)
    assert err.modulus == 256 and err.modulus_needed == 382  # floor(256*0.99 + 128) = 381


def test_textbook_example_below_half_is_exact() -> None:
    q = quantize(np.array([0.0, 0.25, 0.49]), 256, 128, 256)
    np.testing.assert_array_equal(q, [128, 192, 253])


def test_literal_wrap_is_an_explicit_opt_in() -> None:
    q = quantize(np.array([0.1, 0.5, 0.6, 0.99]), 256, 128, 256, on_overflow=OnOverflow.WRAP)
    np.testing.assert_array_equal(q, [153, 0, 25, 125])  # 153, 256, 281, 381 mod 256


def test_saturate_clamps_to_window() -> None:
    q = quantize(np.array([-1.0, 0.0, 1.0]), 100, 0, 101, "nearest", domain="centered", on_overflow="saturate")
    np.testing.assert_array_equal(centered_lift(q, 101), [-50, 0, 50])


@pytest.mark.parametrize(
    ("x", "rounding", "expected"),
    [
        (0.3, Rounding.FLOOR, 3),  # floor(3.0 + 0.0) with C = 10
        (0.35, Rounding.FLOOR, 3),
        (0.35, Rounding.NEAREST, 4),
        (-0.35, Rounding.FLOOR, 13),  # floor(-3.5) = -4 -> 13 mod 17
        (-0.35, Rounding.NEAREST, 14),  # floor(-3.0) = -3 -> 14
    ],
)
def test_known_residues(x: float, rounding: Rounding, expected: int) -> None:
    assert int(quantize(np.array(x), 10, 0, 17, rounding, domain=Domain.CENTERED)) == expected


def test_centered_lift_known_answers() -> None:
    np.testing.assert_array_equal(centered_lift([0, 1, 8, 9, 16, 17, -1], 17), [0, 1, 8, -8, -1, 0, -1])
    np.testing.assert_array_equal(centered_lift([0, 2, 3, 4], 4), [0, 2, -1, 0])  # p/2 maps to +p/2
    big = 2**127 - 1
    out = centered_lift(np.array([big - 1, 5], dtype=object), big)
    assert out[0] == -1 and out[1] == 5


def test_windows_and_modulus_needed() -> None:
    assert window(256, "unsigned") == (0, 255)
    assert window(256, "centered") == (-127, 128)
    assert window(257, "centered") == (-128, 128)
    assert modulus_needed(-128, 128) == 257
    assert modulus_needed(0, 381, "unsigned") == 382
    assert modulus_needed(-1, 3, "unsigned") is None


def test_stochastic_rounding_is_unbiased() -> None:
    """Mean of 200k stochastic roundings of 0.3 at C=1 is 0.3 ± 5 sigma (false-failure rate < 1e-6)."""
    rng = np.random.default_rng(0)
    q = quantize(np.full(200_000, 0.3), 1.0, 0.0, 17, "stochastic", domain="centered", rng=rng)
    mean = centered_lift(q, 17).mean()
    assert abs(mean - 0.3) < 5 * np.sqrt(0.21 / 200_000)


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"modulus": 1}, "modulus"),
        ({"modulus": 2**60}, "exceeds"),
        ({"rounding": "up"}, "rounding"),
        ({"domain": "signed"}, "domain"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict, match: str) -> None:
    args = {"scale": 1.0, "offset": 0.0, "modulus": 17, **kwargs}
    with pytest.raises(ConfigError, match=match) as info:
        quantize(np.zeros(3), **args)
    assert isinstance(info.value, ValueError)


def test_non_finite_input_raises() -> None:
    with pytest.raises(ConfigError):
        quantize(np.array([np.nan]), 1.0, 0.0, 17)


def test_per_channel_needs_axis() -> None:
    with pytest.raises(ConfigError, match="axis"):
        quantize(np.zeros((2, 3)), [1.0, 2.0], 0.0, 17)


def test_quant_params_validate_and_round_trip() -> None:
    p = QuantParams(scale=(2.0, 4.0), offset=0.0, modulus=33, axis=1)
    assert QuantParams.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError):
        QuantParams(scale=(1.0, 2.0))
    with pytest.raises(ConfigError):
        QuantParams(scale=1.0, rounding="sideways")


# -- properties ----------------------------------------------------------------

floats = st.floats(-100.0, 100.0, allow_nan=False, width=64)
scales = st.floats(0.5, 1000.0, allow_nan=False)
big_modulus = 2**40 + 15


@settings(max_examples=200, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=floats), c=scales)
def test_nearest_round_trip_error_at_most_half_step(x: np.ndarray, c: float) -> None:
    q = quantize(x, c, 0.0, big_modulus, Rounding.NEAREST, domain=Domain.CENTERED)
    err = np.abs(dequantize(q, c, 0.0, big_modulus, domain=Domain.CENTERED) - x)
    assert q.shape == x.shape and q.dtype == np.int64
    assert np.all(err <= 1 / (2 * c) * (1 + 1e-9) + 1e-12)


@settings(max_examples=200, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=floats), c=scales,
       d=st.floats(-50, 50))
def test_floor_round_trip_error_below_one_step(x: np.ndarray, c: float, d: float) -> None:
    q = quantize(x, c, d, big_modulus, Rounding.FLOOR, domain=Domain.CENTERED)
    diff = x - dequantize(q, c, d, big_modulus, domain=Domain.CENTERED)
    assert np.all(diff >= -1e-9) and np.all(diff < 1 / c + 1e-9)


@settings(max_examples=200, deadline=None)
@given(a=hnp.arrays(np.float64, 6, elements=st.floats(-10, 10)), b=hnp.arrays(np.float64, 6, elements=st.floats(-10, 10)),
       p=st.sampled_from([257, 65537, 2**31 - 1]))
def test_residues_are_consistent_under_addition(a: np.ndarray, b: np.ndarray, p: int) -> None:
    """(Q(a) + Q(b)) mod p decodes to round(Ca) + round(Cb) while the sum stays in the window."""
    c = 5.0
    qa = quantize(a, c, 0, p, "nearest", domain="centered")
    qb = quantize(b, c, 0, p, "nearest", domain="centered")
    expected = np.floor(c * a + 0.5) + np.floor(c * b + 0.5)
    np.testing.assert_array_equal(centered_lift((qa + qb) % p, p), expected)


@settings(max_examples=100, deadline=None)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=4), data=st.data())
def test_per_channel_shapes(shape: tuple[int, ...], data: st.DataObject) -> None:
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)))
    c = np.arange(1, shape[axis] + 1, dtype=float) * 10
    q = quantize(x, c, np.zeros(shape[axis]), 1001, "nearest", domain="centered", axis=axis)
    assert q.shape == x.shape
    back = dequantize(q, c, np.zeros(shape[axis]), 1001, domain="centered", axis=axis)
    step = 1 / (2 * np.expand_dims(c, [a for a in range(len(shape)) if a != axis]))
    assert np.all(np.abs(back - x) <= step + 1e-12)


def test_public_names_are_exported() -> None:
    for name in ("quantize", "dequantize", "centered_lift", "quantize_model", "QuantizedModel"):
        assert hasattr(secquant, name)
