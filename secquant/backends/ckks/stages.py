"""The model's stages as CKKS evaluates them: the shared lowering plus the bounds CKKS scales by.

The stages come from :func:`secquant.quant.lowering.lower` (consecutive affine
ops composed into one exact integer map; squares; polynomials).  CKKS adds:

* the matrix as doubles (what its encoder takes; exact below 2**52), and a
  polynomial's coefficients with all-zero top terms dropped;
* an affine stage whose matrix is the identity is a *shift*: one plaintext
  addition, no level;
* float bounds recomputed for the order in which CKKS sums, chained stage by
  stage from the input's quantization range and inflated by ``1 + 1e-12`` (they
  only need to be upper bounds): every partial sum of row ``i`` is at most
  ``sum_j |A_ij| m_j + |c_i|`` for per-element input bounds ``m``, whatever the
  summation order (diagonals, baby-step giant-step, blocks).  A polynomial's
  bound is never below the proven one of :func:`~secquant.quant.lowering.lower`.

A polynomial of degree d builds x**i by repeated squaring (x**i = x**a ·
x**(i-a), a the largest power of two below i) and costs ``ceil(log2 d) + 1``
levels in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.ckks.fold import fold_group, group_stages, rounding_through
from secquant.errors import ConfigError, ParameterError, UnsupportedLayerError
from secquant.quant.lowering import Affine, Poly, Requantize, StageKind, lower
from secquant.quant.lowering import Stage as Lowered
from secquant.quant.model import QuantizedModel

__all__ = ["MAX_POLY_DEGREE", "Stage", "StageKind", "build_stages", "power_depth", "power_split", "powers_needed",
           "stage_variants"]

#: Entries of a matrix and poly coefficients must be exact in float64 (the CKKS encoder takes doubles).
_FLOAT_EXACT = 2.0**52
#: Upward inflation of float bounds (they only need to be upper bounds).
_INFLATE = 1.0 + 1e-12
#: Highest polynomial degree the CKKS backend evaluates (what ``approximate_activations`` fits).
MAX_POLY_DEGREE = 8


def power_depth(i: int) -> int:
    """Levels x**i costs when built as x**a · x**(i-a), a the largest power of two below i: ceil(log2 i)."""
    return (int(i) - 1).bit_length()


def power_split(i: int) -> tuple[int, int]:
    """(a, i - a) with a the largest power of two below i (i >= 2); depth(a) >= depth(i - a)."""
    a = 1 << ((int(i) - 1).bit_length() - 1)
    return a, int(i) - a


def powers_needed(degrees: list[int]) -> list[int]:
    """Every power >= 2 needed to build x**i for each i in ``degrees``, in an order that builds them."""
    need: set[int] = set()
    todo = [d for d in degrees if d >= 2]
    while todo:
        i = todo.pop()
        if i in need:
            continue
        need.add(i)
        todo.extend(j for j in power_split(i) if j >= 2)
    return sorted(need)


def _ints(values: Any) -> NDArray[Any]:
    """Exact integers as a flat object array of Python ints."""
    return np.array([int(v) for v in np.asarray(values).reshape(-1)], dtype=object)


@dataclass(frozen=True, eq=False)
class Stage:
    """One stage as CKKS evaluates it.

    Attributes:
        source: The stage of the shared lowering.
        in_bound: (n_in,) float bounds on |input|.
        out_bound: (n_out,) float bounds on |output| and on every partial sum of a row
            (for POLY, ``sum_i |A_i| m**i``, which covers every term and partial sum).
        matrix: (n_out, n_in) integer-valued float64 of a weighted AFFINE stage, else None.
        bias: (n_out,) Python ints: the affine bias, A_0 of a POLY, zeros for SQUARE.
        coeffs: POLY: (degree+1, n) Python ints, top all-zero terms dropped; else None.
        partial_floor: The proven bound on every value the stage forms (POLY); :attr:`partial`
            is never below it.
        op_names: The ops of a stage with requantize ops folded in (else the source's names).
        rounding: Error the stage adds to exact inputs by the roundings it skips (integer units
            of its output; :mod:`~.fold`).
        rounding_total: The model's rounding-only error after this stage (cumulative, integer units).
        can_clip: Some requantize op of the stage can clip for inputs within its bounds (the
            error bound then holds only for inputs on which none clips).
        integral: The weights and bias are integers (a stage may multiply at scale 1 only then).
        square_shift: A completed degree-2 POLY (:mod:`~.square`): the stage is the SQUARE
            ``(x + square_shift)**2``, per feature; else None.
        pre_bias: Bound on ``|A x|`` before the bias where it can exceed the output's bound (the
            stage after a completed square, whose bias cancels most of ``A x``), else 0.  The
            planner keeps it below the modulus; the scale is sized for the output.
    """

    source: Lowered
    in_bound: NDArray[np.float64] = field(repr=False)
    out_bound: NDArray[np.float64] = field(repr=False)
    matrix: NDArray[np.float64] | None = field(default=None, repr=False)
    bias: NDArray[Any] = field(default_factory=lambda: np.zeros(0, dtype=object), repr=False)
    coeffs: NDArray[Any] | None = field(default=None, repr=False)
    partial_floor: float = 0.0
    op_names: tuple[str, ...] = ()
    rounding: float = 0.0
    rounding_total: float = 0.0
    can_clip: bool = False
    integral: bool = True
    square_shift: NDArray[np.float64] | None = field(default=None, repr=False)
    pre_bias: float = 0.0

    @property
    def kind(self) -> StageKind:
        """AFFINE, SQUARE or POLY (of the shared lowering); requantize ops alone are a diagonal AFFINE stage;
        a completed POLY is a SQUARE."""
        if self.square_shift is not None:
            return StageKind.SQUARE
        return StageKind.AFFINE if self.source.kind is StageKind.REQUANTIZE else self.source.kind

    @property
    def shift(self) -> bool:
        """An AFFINE stage with the identity matrix: only a plaintext addition, no level."""
        return self.kind is StageKind.AFFINE and self.matrix is None

    @property
    def weighted(self) -> bool:
        """An AFFINE stage with a weight matrix: a plaintext multiplication (and usually a rescale)."""
        return self.matrix is not None

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the integer ops it evaluates."""
        return self.op_names or self.source.names

    @property
    def n_in(self) -> int:
        """Flattened input size."""
        return int(self.in_bound.size)

    @property
    def n_out(self) -> int:
        """Flattened output size."""
        return int(self.out_bound.size)

    @property
    def degree(self) -> int:
        """Polynomial degree (POLY), else 0."""
        return int(self.coeffs.shape[0]) - 1 if self.coeffs is not None else 0

    @property
    def levels(self) -> int:
        """Primes the stage drops: 0 (shift), 1 (weighted AFFINE, SQUARE), ceil(log2 degree) + 1 (POLY)."""
        if self.shift:
            return 0
        if self.kind is StageKind.POLY:
            return power_depth(self.degree) + 1
        return 1

    @property
    def partial(self) -> float:
        """Bound on |every value| the stage forms, in integer units."""
        top = float(np.max(self.out_bound)) if self.out_bound.size else 0.0
        return max(top, self.partial_floor)

    @property
    def row_l1(self) -> float:
        """Largest row sum of |A| (how much the stage amplifies an input error)."""
        if self.matrix is None:
            return 1.0
        return float(np.max(np.abs(self.matrix).sum(axis=1)))

    @property
    def pattern(self) -> NDArray[np.bool_]:
        """The entries a layout may use: the source's geometric support where it has the matrix's shape
        (a folded requantize keeps it; a requantize alone is diagonal), always including ``matrix != 0``.

        Layouts the client sees (gathers, diagonal sets) are built on it, so a zero weight does not show.

        Raises:
            ConfigError: the stage has no weight matrix.
        """
        if self.matrix is None:
            raise ConfigError(f"stage {self.op_names or self.source.names}: no weight matrix to lay out")
        nonzero = self.matrix != 0
        src = self.source
        if isinstance(src, Affine) and src.support.shape == nonzero.shape:
            return nonzero | src.support
        if isinstance(src, Requantize) and nonzero.shape[0] == nonzero.shape[1]:
            return nonzero | np.eye(nonzero.shape[0], dtype=bool)
        return nonzero

    @property
    def row_nnz(self) -> int:
        """Most non-zero weights in one row."""
        if self.matrix is None:
            return 1
        return int(np.max(np.count_nonzero(self.matrix, axis=1)))

    def bias_float(self) -> NDArray[np.float64]:
        """The bias as float64 (exact up to 2**53, relative 2**-53 beyond)."""
        return np.array([float(v) for v in self.bias], dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        d: dict[str, Any] = {"kind": "shift" if self.shift else self.kind.value, "ops": list(self.names), "n_in": self.n_in,
             "n_out": self.n_out, "partial_bound_bits": round(float(np.log2(max(self.partial, 1.0))), 2)}
        if self.kind is StageKind.POLY:
            d["degree"] = self.degree
        if self.square_shift is not None:
            d["completed_square"] = {"from": "poly of degree 2", "levels_saved": 1,
                                     "max_abs_shift": float(np.max(np.abs(self.square_shift), initial=0.0))}
        return d


def _affine(st: Affine, m: NDArray[np.float64]) -> Stage:
    """A weighted or shift stage; its float bound ``(|A| m + |b|)`` inflated."""
    matrix = np.asarray(st.matrix, dtype=np.float64)
    if matrix.size and float(np.max(np.abs(matrix))) >= _FLOAT_EXACT:
        raise ParameterError(f"the composed weights of {list(st.names)} pass 2**52; CKKS encodes doubles")
    bias = _ints(st.bias)
    babs = np.array([float(abs(int(v))) for v in bias], dtype=np.float64)
    out = (np.abs(matrix) @ m + babs) * _INFLATE
    return Stage(st, m, out, None if st.is_shift else matrix, bias)


def _poly(st: Poly, m: NDArray[np.float64]) -> Stage:
    """A POLY stage (top zero terms dropped) with bound ``sum_i |A_i| m**i`` inflated.

    Raises:
        ParameterError: a coefficient of x**i (i >= 1) is not exact as a double.
    """
    trimmed = st.trimmed()
    coeffs = np.array([[int(v) for v in row] for row in np.asarray(trimmed.coeffs)], dtype=object)
    top = max((abs(int(v)) for v in coeffs[1:].reshape(-1)), default=0)
    if top >= _FLOAT_EXACT:
        raise ParameterError(f"{st.names[0]}: a poly coefficient of x**i (i >= 1) reaches 2**{top.bit_length() - 1}; "
                             "CKKS encodes doubles, exact only below 2**52: quantize the layer with fewer bits")
    absc = np.abs(coeffs).astype(np.float64)
    out = absc[0].copy()
    for i in range(1, coeffs.shape[0]):
        out = out + absc[i] * m**i
    return Stage(st, m, out * _INFLATE, None, coeffs[0].copy(), coeffs, float(st.partial_max) * _INFLATE)


def _check_degrees(stages: tuple[Lowered, ...]) -> None:
    """Refuse every polynomial of degree above :data:`MAX_POLY_DEGREE`, naming its layer."""
    bad = [f"{st.names[0]} (poly of degree {st.degree}): the CKKS backend evaluates degree <= {MAX_POLY_DEGREE} "
           f"(ceil(log2 d) + 1 levels); refit with approximate_activations(degree<={MAX_POLY_DEGREE})"
           for st in stages if isinstance(st, Poly) and st.degree > MAX_POLY_DEGREE]
    if bad:
        raise UnsupportedLayerError(bad)


def _folded(group: list[Lowered], m: NDArray[np.float64], d: NDArray[np.float64]) -> tuple[Stage, NDArray[np.float64]]:
    """An AFFINE stage with requantize ops folded in (:mod:`~.fold`), and the rounding-only error after it."""
    f = fold_group(group, m, d)
    source = next((st for st in group if isinstance(st, Affine)), group[0])
    bias = np.array([float(v) for v in f.bias], dtype=object)
    stage = Stage(source, m, f.out_bound * _INFLATE, f.matrix, bias, None, 0.0, f.names, f.rounding,
                  float(np.max(f.d_out, initial=0.0)), f.can_clip, False)
    return stage, f.d_out


def _unbalanced(qm: QuantizedModel) -> list[Stage]:
    lowered = lower(qm)
    _check_degrees(lowered)
    m = np.array([float(v) for v in lowered[0].in_bound], dtype=np.float64) if lowered else np.zeros(0)
    d = np.zeros_like(m)  # rounding-only error per feature (requantize ops CKKS does not round)
    stages: list[Stage] = []
    for group in group_stages(lowered):
        st = group[0]
        if len(group) > 1 or isinstance(st, Requantize):
            stage, d = _folded(group, m, d)
        elif isinstance(st, Affine):
            stage, d = _affine(st, m), np.abs(np.asarray(st.matrix, dtype=np.float64)) @ d
        else:
            stage = _poly(st, m) if isinstance(st, Poly) else Stage(st, m, m * m * _INFLATE, None,
                                                                     np.array([0] * m.size, dtype=object))
            d = rounding_through(st, m, d)
        if np.any(d) and not stage.rounding_total:
            stage = replace(stage, rounding_total=float(np.max(d)))
        stages.append(stage)
        m = stage.out_bound
    return stages


def build_stages(qm: QuantizedModel, complete: float | None = None) -> list[Stage]:
    """The CKKS stages of ``qm`` with their float bounds; requantize ops folded into affine stages, and the
    features of a laid-out graph held at one magnitude per stage (:mod:`~.balance`).

    With ``complete`` (a ratio, see :func:`~.square.complete_squares`), degree-2
    polynomials followed by an affine stage become shifted squares: one level
    each instead of two.

    Raises:
        UnsupportedLayerError: an op no encrypted backend evaluates, or a
            ``poly`` of degree above :data:`MAX_POLY_DEGREE`.
        ParameterError: composed weights or poly coefficients too large for doubles.
    """
    return stage_variants(qm, () if complete is None else (complete,))[-1]


def stage_variants(qm: QuantizedModel, ratios: tuple[float, ...]) -> list[list[Stage]]:
    """The stages as they are, then completed at each of ``ratios`` (distinct rewrites only), each balanced."""
    from secquant.backends.ckks.balance import balance
    from secquant.backends.ckks.square import complete_squares

    base = _unbalanced(qm)
    out, seen = [balance(base)], set()
    for ratio in ratios:
        done = complete_squares(base, ratio)
        key = tuple(st.square_shift is not None for st in done)
        if any(key) and key not in seen:
            seen.add(key)
            out.append(balance(done))
    return out
