"""The one lowering (``secquant.quant.lowering``): stages that reproduce ``forward_int`` exactly.

Oracles: ``functools.reduce`` of ``stage.apply`` over ``lower(qm)`` must equal
``qm.forward_int`` bit for bit (values and shape) on trained models (digits
MLP, the MNIST CNN of the backend fixtures, a CNN with BatchNorm and Poly);
hand-composed matrices are known answers (``W (x + c) + b = W x + (W c + b)``);
the stage bounds equal ``qm.bounds()`` per feature and are attained by
sign-chosen inputs (``|A| m + |b|`` is tight); hypothesis checks, with
Python-int arithmetic as the oracle, exactness past 2**63 and that no partial
sum of any row, in a random order, passes ``partial_bound``.  Hypothesis runs
derandomized: the same cases every run.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import secquant
from secquant.errors import ConfigError, UnsupportedLayerError
from secquant.quant.intops import IntAddConst, IntFlatten, IntLinear, IntPoly, IntSquare
from secquant.quant.lowering import (
    AFFINE_OPS,
    Affine,
    Poly,
    Square,
    Stage,
    StageKind,
    lower,
)
from secquant.quant.model import InputQuant, QuantizedModel
from secquant.quant.primitives import OnOverflow, Rounding
from tests.backends.conftest import make_digits_mlp, make_mnist_cnn
from tests.quant.conftest import random_cnn

_DERANDOMIZED = settings(max_examples=30, deadline=None, derandomize=True)


def _v(values: Any) -> np.ndarray:
    """Python ints as an object array (how stages hold bounds)."""
    return np.array(values, dtype=object)


def run(stages: tuple[Stage, ...], xq: Any) -> Any:
    """The stages applied in order."""
    return functools.reduce(lambda x, s: s.apply(x), stages, np.asarray(xq))


def _hand_model(ops: list[Any], shape: tuple[int, ...], lo: int = -8, hi: int = 7) -> QuantizedModel:
    iq = InputQuant(scale=1.0, offset=0, lo=lo, hi=hi, rounding=Rounding.NEAREST,
                     on_overflow=OnOverflow.SATURATE, shape=shape)
    qm0 = QuantizedModel(iq, tuple(ops), np.ones(1), 2**61 - 1)
    return QuantizedModel(iq, tuple(ops), np.ones(qm0.output_shape), qm0.modulus_needed * 2 + 1)


def _corners(qm: QuantizedModel, n: int, seed: int) -> np.ndarray:
    """Inputs at the range ends (where bounds are attained) and uniform ones."""
    rng = np.random.default_rng(seed)
    lo, hi = qm.input_quant.lo, qm.input_quant.hi
    ends = np.where(rng.random((n, *qm.input_shape)) < 0.5, lo, hi)
    uniform = rng.integers(lo, hi + 1, size=(n, *qm.input_shape))
    return np.concatenate([ends, uniform, np.full((1, *qm.input_shape), lo), np.full((1, *qm.input_shape), hi)])


def _assert_lowering_exact(qm: QuantizedModel, xq: np.ndarray) -> tuple[Stage, ...]:
    stages = lower(qm)
    ref = qm.forward_int(xq)
    out = run(stages, xq)
    assert out.shape == ref.shape
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(ref, dtype=object))
    _assert_bounds_match_report(qm, stages)
    return stages


def _assert_bounds_match_report(qm: QuantizedModel, stages: tuple[Stage, ...]) -> None:
    """Per-feature bounds are those of ``qm.bounds()``; stages chain; names cover every op once, in order."""
    report = qm.bounds()
    assert [n for s in stages for n in s.names] == [op.name for op in qm.ops]
    iq = qm.input_quant
    assert list(stages[0].in_bound) == [max(abs(iq.lo), abs(iq.hi))] * stages[0].in_features
    k = 0
    for prev, s in zip((None, *stages), stages):
        k += len(s.names)
        layer = report.layers[k - 1]
        per_feature = np.maximum(np.abs(np.asarray(layer.lo, dtype=object)), np.abs(np.asarray(layer.hi, dtype=object)))
        assert list(s.out_bound) == list(per_feature.reshape(-1))
        assert s.out_max == layer.max_abs and s.out_shape == layer.shape
        assert s.partial_max >= s.out_max
        if prev is not None:
            assert s.in_shape == prev.out_shape and list(s.in_bound) == list(prev.out_bound)
    assert stages[-1].out_shape == qm.output_shape


@pytest.fixture(scope="module")
def poly_cnn() -> QuantizedModel:
    """conv(pad) -> BatchNorm -> Square -> avgpool -> flatten -> linear -> Poly -> linear, on digits images."""
    d = secquant.data.load_dataset("digits")
    return secquant.quantize_model(random_cnn(), d.x_train[:256].reshape(-1, 1, 8, 8), bits=6)


def test_digits_mlp_lowers_to_affine_square_affine() -> None:
    tm = make_digits_mlp()
    stages = _assert_lowering_exact(tm.qm, tm.qm.quantize_input(tm.x_test[:64]))
    assert [s.kind for s in stages] == [StageKind.AFFINE, StageKind.SQUARE, StageKind.AFFINE]
    first = tm.qm.ops[0]
    assert isinstance(first, IntLinear) and isinstance(stages[0], Affine)
    assert np.array_equal(stages[0].matrix, np.asarray(first.weight)) and np.array_equal(stages[0].bias, first.bias)
    assert stages[0].matrix.dtype == np.int64 and not stages[0].is_shift
    _assert_lowering_exact(tm.qm, _corners(tm.qm, 32, seed=1))


def test_mnist_cnn_merges_pool_flatten_linear_into_one_affine() -> None:
    tm = make_mnist_cnn()
    stages = _assert_lowering_exact(tm.qm, tm.qm.quantize_input(tm.x_test[:64]))
    kinds = [s.kind for s in stages]
    assert kinds == [StageKind.AFFINE, StageKind.SQUARE, StageKind.AFFINE]
    assert len(stages[2].names) == 3 and stages[2].in_shape == (2, 12, 12) and stages[2].out_shape == (10,)
    _assert_lowering_exact(tm.qm, _corners(tm.qm, 8, seed=2))


def test_poly_cnn_with_batchnorm_is_exact(poly_cnn: QuantizedModel) -> None:
    d = secquant.data.load_dataset("digits")
    xq = poly_cnn.quantize_input(d.x_test[:64].reshape(-1, 1, 8, 8))
    stages = _assert_lowering_exact(poly_cnn, xq)
    assert [s.kind for s in stages] == [StageKind.AFFINE, StageKind.SQUARE, StageKind.AFFINE, StageKind.POLY,
                                        StageKind.AFFINE]
    poly = stages[3]
    assert isinstance(poly, Poly) and poly.coeffs.shape == (3, 5) and poly.degree == 2 and poly.depth == 1
    _assert_lowering_exact(poly_cnn, _corners(poly_cnn, 16, seed=3))
    # the proven bounds hold on every stage's real outputs
    x: Any = np.concatenate([xq, _corners(poly_cnn, 16, seed=4)])
    for s in stages:
        x = s.apply(x)
        flat = np.abs(np.asarray(x, dtype=object).reshape(len(x), -1))
        assert all(int(v) <= int(b) for row in flat for v, b in zip(row, s.out_bound))


def test_composition_is_the_known_answer() -> None:
    """add_const c, flatten, linear (W, b) is one stage: A = W, bias = W c + b (c broadcast, flattened)."""
    c = np.array([[[1, -2], [3, 0]]])  # shape (1, 2, 2)
    w = np.array([[1, 2, 0, -1], [0, -3, 4, 5], [2, 2, 2, 2]])
    b = np.array([7, -1, 0])
    ops = [IntAddConst("shift", c), IntFlatten("flat"), IntLinear("fc", w, b), IntSquare("sq"),
           IntLinear("out", np.array([[1, -1, 2]]), np.array([3]))]
    qm = _hand_model(ops, (1, 2, 2))
    stages = lower(qm)
    assert [s.names for s in stages] == [("shift", "flat", "fc"), ("sq",), ("out",)]
    first = stages[0]
    assert isinstance(first, Affine)
    assert first.matrix.tolist() == w.tolist()
    assert first.bias.tolist() == (w @ c.reshape(-1) + b).tolist()
    # per-feature bound by hand: |A| 8 + |W c + b| (the stage's input is the model input, |x| <= 8)
    m = [8] * 4
    assert first.partial_bound.tolist() == [sum(abs(int(w[i, j])) * m[j] for j in range(4)) + abs(int(first.bias[i]))
                                            for i in range(3)]
    xs = np.array(np.meshgrid(*[range(-8, 8)] * 4)).reshape(4, -1).T.reshape(-1, 1, 2, 2)
    assert np.array_equal(run(stages, xs), qm.forward_int(xs))


def test_flatten_alone_is_a_reshape_and_add_const_alone_a_shift() -> None:
    ops = [IntSquare("sq1"), IntFlatten("flat"), IntSquare("sq2"), IntAddConst("shift", np.array([1, 2, 3, 4])),
           IntPoly("p", np.array([[1], [0], [2], [0], [0]]))]
    qm = _hand_model(ops, (2, 2), lo=-3, hi=3)
    stages = lower(qm)
    assert [s.kind for s in stages] == [StageKind.SQUARE, StageKind.AFFINE, StageKind.SQUARE, StageKind.AFFINE,
                                        StageKind.POLY]
    reshape, shift, poly = stages[1], stages[3], stages[4]
    assert isinstance(reshape, Affine) and reshape.is_reshape and reshape.out_shape == (4,)
    assert isinstance(shift, Affine) and shift.is_shift and not shift.is_reshape
    assert isinstance(poly, Poly) and poly.degree == 4 and poly.depth == 2
    short = poly.trimmed()
    assert short.degree == 2 and short.depth == 1 and short.coeffs.tolist() == [[1] * 4, [0] * 4, [2] * 4]
    xs = np.array(np.meshgrid(*[range(-3, 4)] * 4)).reshape(4, -1).T.reshape(-1, 2, 2)
    assert np.array_equal(run(stages, xs), qm.forward_int(xs))
    assert np.array_equal(short.apply(xs), poly.apply(xs))
    # bounds by hand: (3²)² = 81, plus at most 4 -> 85; poly 1 + 2·85² = 14451
    assert shift.out_max == 85 and poly.out_max == 14451 and poly.partial_max == 14451


def test_affine_partial_bound_is_attained() -> None:
    """|A| m + |b| is tight: x_j = sign(b_i) sign(A_ij) m_j reaches it in row i."""
    a = np.array([[3, -5, 0], [-1, -1, 2]])
    bias = np.array([-4, 9])
    stage = Affine(("fc",), (3,), (2,), _v([2, 7, 1]), _v([45, 18]), a, bias)
    assert stage.partial_bound.tolist() == [3 * 2 + 5 * 7 + 4, 2 + 7 + 2 + 9] == [45, 20]
    assert stage.propagate([1, 1, 1]).tolist() == [12, 13]
    assert stage.row_l1 == 8 and stage.d_in == 3 and stage.d_out == 2
    for i in range(2):
        sign = 1 if bias[i] >= 0 else -1
        x = np.array([[sign * int(np.sign(a[i, j])) * m for j, m in enumerate([2, 7, 1])]])
        assert abs(int(stage.apply(x)[0, i])) == int(stage.partial_bound[i])


def test_reduced_is_the_residue_of_the_exact_map() -> None:
    a = np.array([[2**62, -(2**62) - 5], [-1, 1]], dtype=object) * 4  # entries past int64: object
    stage = Affine(("big",), (2,), (2,), _v([3, 3]), _v([2**66, 2**66]), a, _v([-(2**70), 5]))
    assert stage.matrix.dtype == object
    t = 65537
    am, bm = stage.reduced(t)
    assert am.dtype == np.int64 and bm.dtype == np.int64
    assert am.tolist() == [[int(v) % t for v in row] for row in a] and bm.tolist() == [(-(2**70)) % t, 5]
    x = np.array([[3, -2], [-3, 3]])
    exact_y = stage.apply(x)
    assert [[int(v) for v in row] for row in exact_y] == [
        [sum(int(a[i, j]) * int(x[k, j]) for j in range(2)) + [-(2**70), 5][i] for i in range(2)] for k in range(2)]
    assert np.array_equal(np.mod(x.dot(am.T.astype(object)) + bm, t), np.mod(exact_y, t))
    poly = Poly(("p",), (2,), (2,), _v([3, 3]), _v([9, 9]), np.array([[-1, 2], [0, 3], [t + 1, 1]]))
    assert poly.reduced(t).tolist() == [[t - 1, 2], [0, 3], [1, 1]]
    with pytest.raises(ConfigError):
        stage.reduced(2**63)


def test_invalid_stages_and_unsupported_ops_are_refused() -> None:
    with pytest.raises(ConfigError, match="do not map"):
        Affine(("fc",), (3,), (2,), _v([1, 1, 1]), _v([1, 1]), np.zeros((3, 2), dtype=np.int64), _v([0, 0]))
    with pytest.raises(ConfigError, match="entries"):
        Square(("sq",), (2,), (2,), _v([1]), _v([1, 1]))
    with pytest.raises(ConfigError, match="non-negative"):
        Square(("sq",), (2,), (2,), _v([1, -1]), _v([1, 1]))
    with pytest.raises(ConfigError):
        Poly(("p",), (2,), (2,), _v([1, 1]), _v([1, 1]), np.zeros((3, 3), dtype=np.int64))
    square = Square(("sq",), (2,), (2,), _v([1, 1]), _v([1, 1]))
    with pytest.raises(ConfigError, match="takes"):
        square.apply(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ConfigError, match="integer"):
        square.apply(np.zeros((2, 2)))

    mystery = SimpleNamespace(name="odd", kind="mystery")  # an op the lowering has never heard of
    fake = SimpleNamespace(ops=(IntSquare("ok"), mystery))
    assert not isinstance(mystery, AFFINE_OPS)
    with pytest.raises(UnsupportedLayerError) as info:
        lower(fake)  # type: ignore[arg-type]
    assert info.value.problems and "odd" in info.value.problems[0] and "ok" not in " ".join(info.value.problems)


@_DERANDOMIZED
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    scale_bits=st.sampled_from([3, 40, 70]),
    seed=st.integers(0, 2**32 - 1),
)
def test_affine_apply_and_partial_sums_against_python_ints(shape: tuple[int, int], scale_bits: int, seed: int) -> None:
    """Exact A x + b past 2**63, and no partial sum of a row (random order, bias included) passes its bound."""
    rng = np.random.default_rng(seed)
    d_out, d_in = shape
    big = 1 << scale_bits
    a = np.array([[int(v) * big // 8 for v in row] for row in rng.integers(-8, 9, size=shape)], dtype=object)
    b = _v([int(v) * big for v in rng.integers(-4, 5, size=d_out)])
    m = [int(v) for v in rng.integers(0, 50, size=d_in)]
    stage = Affine(("fc",), (d_in,), (d_out,), _v(m), _v([0] * d_out), a, b)
    x = np.array([[int(rng.integers(-mj, mj + 1)) for mj in m] for _ in range(5)], dtype=np.int64)
    y = stage.apply(x)
    for k in range(len(x)):
        for i in range(d_out):
            terms = [int(a[i, j]) * int(x[k, j]) for j in range(d_in)] + [int(b[i])]
            assert int(y[k, i]) == sum(terms)
            order = rng.permutation(len(terms))
            partial = np.cumsum(np.array([terms[t] for t in order], dtype=object))
            assert max(abs(int(p)) for p in partial) <= int(stage.partial_bound[i])
    if scale_bits == 3:  # small values stay int64, as forward_int keeps them
        assert y.dtype == np.int64


@_DERANDOMIZED
@given(degree=st.integers(1, 5), dim=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_poly_apply_and_bound_against_python_ints(degree: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    coeffs = rng.integers(-(2**20), 2**20, size=(degree + 1, dim))
    m = [int(v) for v in rng.integers(1, 2**12, size=dim)]
    stage = Poly(("p",), (dim,), (dim,), _v(m), _v([0] * dim), coeffs)
    x = np.array([[int(rng.integers(-mj, mj + 1)) for mj in m] for _ in range(4)] + [m], dtype=np.int64)
    y = stage.apply(x)
    for k in range(len(x)):
        for j in range(dim):
            terms = [int(coeffs[i, j]) * int(x[k, j]) ** i for i in range(degree + 1)]
            assert int(y[k, j]) == sum(terms)
            partial = np.cumsum(np.array(terms, dtype=object))
            assert max(abs(int(p)) for p in partial) <= int(stage.partial_bound[j])
    assert stage.partial_bound.tolist() == [sum(abs(int(coeffs[i, j])) * m[j] ** i for i in range(degree + 1))
                                            for j in range(dim)]
    sq = Square(("sq",), (dim,), (dim,), _v(m), _v([v * v for v in m]))
    assert sq.apply(x).tolist() == [[int(v) ** 2 for v in row] for row in x]
    assert sq.partial_bound.tolist() == [v * v for v in m] and sq.kind is StageKind.SQUARE


# -- issue 12: requantize stages and graph models ---------------------------------------------
def test_requantize_stage_known_answers() -> None:
    """The op's rule by hand: floor((x·M + 2**(s-1)) / 2**s), ties up; s = 0 is x·M; then the clip at ±L."""
    from secquant.quant.lowering import Requantize, Rounding

    st = Requantize(("rq",), (4,), (4,), _v([9, 9, 9, 9]), _v([2, 2, 9, 3]), _v([1, 3, 1, 1]), _v([1, 2, 0, 0]),
                    _v([2, 2, 9, 3]))
    x = np.array([[1, 1, 5, 3], [-1, -2, -9, -3], [3, 5, 9, 9], [2, -3, -1, 0]])
    # feature 0: (x + 1) >> 1; feature 1: (3x + 2) >> 2; features 2, 3: x·1 exactly; then clips
    assert st.rounded(x).tolist() == [[1, 1, 5, 3], [0, -1, -9, -3], [2, 4, 9, 9], [1, -2, -1, 0]]
    assert st.apply(x).tolist() == [[1, 1, 5, 3], [0, -1, -9, -3], [2, 2, 9, 3], [1, -2, -1, 0]]
    assert st.kind is StageKind.REQUANTIZE and st.rounding is Rounding.HALF_UP
    assert st.factor.tolist() == [0.5, 0.75, 1.0, 1.0] and st.rounding_error.tolist() == [0.5, 0.5, 0.0, 0.0]
    assert st.propagate([9] * 4).tolist() == [10, 29, 9, 9] and st.unclipped([9] * 4).tolist() == [5, 7, 9, 9]
    assert st.can_clip and not st.is_identity  # features 1 and 3 reach 7 > 2 and 9 > 3
    grid = Requantize(("g",), (2, 2), (2, 2), _v([9] * 4), _v([2] * 4), _v([1] * 4), _v([1] * 4), _v([5] * 4))
    assert grid.can_clip is False and grid.unclipped([9] * 4).tolist() == [5] * 4  # shapes with several axes
    assert grid.apply(np.array([[[9, -9], [1, 0]]])).tolist() == [[[5, -4], [1, 0]]]
    carried = Requantize(("c",), (2,), (2,), _v([4, 4]), _v([4, 4]), _v([1, 1]), _v([0, 0]), _v([4, 5]))
    assert carried.is_identity and np.array_equal(carried.apply(np.array([[-4, 4]])), [[-4, 4]])
    with pytest.raises(ConfigError, match="requantize"):
        Requantize(("bad",), (2,), (2,), _v([1, 1]), _v([1, 1]), _v([1, -1]), _v([0, 0]), _v([1, 1]))
    with pytest.raises(ConfigError, match="integers"):
        Requantize(("bad",), (2,), (2,), _v([1, 1]), _v([1, 1]), _v([1]), _v([0, 0]), _v([1, 1]))


def test_requantized_mlp_lowers_with_requantize_stages() -> None:
    """Three Squares with requantization: the stages hold the ops' M, s, L and reproduce forward_int exactly."""
    from secquant.quant.intops import IntRequantize
    from secquant.quant.lowering import Requantize
    from secquant.quant.requantize import RequantizeConfig

    d = secquant.data.load_dataset("breast_cancer")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 16), secquant.nn.Square(), torch.nn.Linear(16, 16),
                              secquant.nn.Square(), torch.nn.Linear(16, 2)).eval()
    qm = secquant.quantize_model(net, d.x_train[:256], bits=8, requantize=RequantizeConfig())
    stages = _assert_lowering_exact(qm, qm.quantize_input(d.x_test))
    _assert_lowering_exact(qm, _corners(qm, 16, seed=5))  # the clip binds at the corners
    kinds = [s.kind for s in stages]
    assert kinds == [StageKind.AFFINE, StageKind.REQUANTIZE, StageKind.SQUARE] * 2 + [StageKind.AFFINE]
    ops = {op.name: op for op in qm.ops}
    for s in stages:
        if isinstance(s, Requantize):
            op = ops[s.names[0]]
            assert isinstance(op, IntRequantize)
            assert s.multiplier.tolist() == np.broadcast_to(op.multiplier, s.in_shape).reshape(-1).tolist()
            assert s.shift.tolist() == np.broadcast_to(op.shift, s.in_shape).reshape(-1).tolist()
            assert s.out_max <= RequantizeConfig().limit and s.can_clip  # calibration ranges: the clip can bind


def test_a_residual_graph_is_lowered_through_linearize() -> None:
    """A DAG (residual adds, BatchNorm) lowers to a chain whose run equals the graph's forward_int, shape included."""
    torch = pytest.importorskip("torch")
    from tests.quant.test_graphs import TinyResNet, _randomize_bn

    torch.manual_seed(4)
    model = TinyResNet().eval()
    _randomize_bn(model)
    x = torch.rand(32, 1, 8, 8).numpy()
    qm = secquant.quantize_model(model, x, bits=6)
    assert not qm.is_chain
    stages = lower(qm)
    assert [s.kind for s in stages] == [StageKind.AFFINE, StageKind.POLY, StageKind.AFFINE, StageKind.POLY,
                                        StageKind.AFFINE]
    assert stages[0].in_shape == qm.input_shape and stages[-1].out_shape == qm.output_shape
    for xq in (qm.quantize_input(x), _corners(qm, 8, seed=6)):
        np.testing.assert_array_equal(np.asarray(run(stages, xq), dtype=object),
                                      np.asarray(qm.forward_int(xq), dtype=object))
    assert stages[-1].out_max <= qm.bounds().output.max_abs  # linearized bounds are never looser


def test_a_linearized_stage_is_its_weight_without_running_unit_vectors(monkeypatch) -> None:
    """A lone linear op's matrix is its weight (a ResNet on MNIST took minutes to push d unit vectors through
    it); a linearized model is lowered once, a chain each time (nothing large kept on the model)."""
    torch = pytest.importorskip("torch")
    from secquant.quant.linearize import linearize
    from tests.quant.test_graphs import TinyResNet, _randomize_bn

    torch.manual_seed(4)
    model = TinyResNet().eval()
    _randomize_bn(model)
    qm = secquant.quantize_model(model, torch.rand(32, 1, 8, 8).numpy(), bits=6)
    weights = [op for op in linearize(qm).ops if isinstance(op, IntLinear)]
    from secquant.quant import lowering

    taken: list[Any] = []
    one_linear = lowering._one_linear
    monkeypatch.setattr(lowering, "_one_linear", lambda ops, shape: taken.append(one_linear(ops, shape)) or taken[-1])
    affine = [s for s in lower(qm) if s.kind is StageKind.AFFINE]
    assert taken and all(t is not None for t in taken)  # the model's and its twin's stages, none by unit vectors
    assert len(affine) == len(weights)
    for stage, op in zip(affine, weights, strict=True):
        np.testing.assert_array_equal(np.asarray(stage.matrix, dtype=object), np.asarray(op.weight, dtype=object))
    assert lower(qm) is lower(qm)
    chain = make_digits_mlp().qm
    assert lower(chain) is not lower(chain)
