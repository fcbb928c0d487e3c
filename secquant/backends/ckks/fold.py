"""Requantize stages under CKKS: folded into the affine stage next to them, their rounding charged to the bound.

A requantize op maps x to ``clip(floor((x·M + 2**(s-1)) / 2**s), ±L)``.  CKKS
carries scales, not integers: multiplying by the real factor ``f = M / 2**s``
is a multiplication by a plaintext, and where an affine stage is next to it
that multiplication is free, folded into the stage's weights (rows scaled by
the factors of the requantize ops after it, columns by those before it).  A
requantize with no affine stage next to it becomes its own diagonal affine
stage (one plaintext product, one level).  So depth is limited only by the
modulus chain: every requantize brings the values back to ``±L`` and no level
is spent on it.

What CKKS does not do:

* **the rounding.**  ``floor(x·f + 1/2)`` and ``x·f`` differ by at most 1/2
  (0 where s = 0).  That difference is charged to the error bound where it
  arises and carried through every later stage as the CKKS noise is (an
  affine stage multiplies it by |A|, a square by ``2m + e``, a polynomial by its
  derivative bound).  :attr:`Folded.rounding` is what the stage adds, from
  exact inputs; the cumulative rounding-only error ``d`` is tracked alongside
  (:attr:`Folded.d_out`).
* **the clip.**  CKKS cannot compare.  The bound holds for inputs on which no
  requantize clips, which is every input when the op's range was the proven one
  (``RangeSource.PROVEN``) and, with calibration ranges, every input within
  them.  Under that condition a requantized integer lies within ``±L``: the
  scale after the stage is sized for that (the proven bound of the unclipped
  values would compound the pessimism of every layer).  The CKKS value may
  exceed it by the error bound, and the partial sums of a folded row may
  exceed it too; CKKS computes mod Q, so only the decrypted output must fit
  its modulus, and the planner sizes q0 for the output bound plus the error
  bound.  :attr:`Folded.can_clip` says whether the clip can bind for some input.

Bounds here are floats (upper bounds, inflated by the caller) on the integer
model's values; the CKKS value differs from them by at most the error bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ParameterError
from secquant.quant.lowering import Affine, Poly, Requantize
from secquant.quant.lowering import Stage as Lowered

__all__ = ["DOUBLE_REL", "Folded", "fold_group", "group_stages", "rounding_through"]

#: Relative error of a double (a folded weight ``A_ij·f`` is not an integer).
DOUBLE_REL = 2.0**-53
#: Entries of a matrix must be exact in float64 (the CKKS encoder takes doubles).
FLOAT_EXACT = 2.0**52

F64 = NDArray[np.float64]


def _floats(values: object) -> F64:
    return np.array([float(v) for v in np.asarray(values).reshape(-1)], dtype=np.float64)


def group_stages(lowered: tuple[Lowered, ...] | list[Lowered]) -> list[list[Lowered]]:
    """The lowered stages as CKKS stages: ``[Requantize*] Affine [Requantize*]``, a square or poly alone,
    or requantize ops with no affine stage next to them (``[Requantize+]``).

    A requantize joins the affine stage before it (rows), else the one after it (columns).
    """
    groups: list[list[Lowered]] = []
    for st in lowered:
        last = groups[-1] if groups else []
        rq_only = bool(last) and all(isinstance(s, Requantize) for s in last)
        joins_rows = isinstance(st, Requantize) and (rq_only or any(isinstance(s, Affine) for s in last))
        joins_cols = isinstance(st, Affine) and rq_only
        if joins_rows or joins_cols:
            last.append(st)
        else:
            groups.append([st])
    return groups


@dataclass(frozen=True, eq=False)
class Folded:
    """An affine CKKS stage with its requantize ops folded in.

    Attributes:
        names: The ops, in order.
        matrix: (n_out, n_in) float64, ``diag(f_after) A diag(f_before)``.
        bias: (n_out,) float64, ``f_after ⊙ b``.
        out_bound: Bound on the integer model's |output| (within ``±L`` after a requantize).
        rounding: Largest error the stage adds to exact inputs: skipped roundings, and the doubles of its weights.
        d_out: The model's cumulative rounding-only error per output feature.
        can_clip: Whether some requantize op of the stage can clip for inputs within its bounds.
    """

    names: tuple[str, ...]
    matrix: F64 = field(repr=False)
    bias: F64 = field(repr=False)
    out_bound: F64 = field(repr=False)
    rounding: float
    d_out: F64 = field(repr=False)
    can_clip: bool


def _affine_matrix(st: Affine) -> F64:
    matrix = np.asarray(st.matrix, dtype=np.float64)
    if matrix.size and float(np.max(np.abs(matrix))) >= FLOAT_EXACT:
        raise ParameterError(f"the composed weights of {list(st.names)} pass 2**52; CKKS encodes doubles")
    return matrix


def fold_group(group: list[Lowered], m_in: F64, d_in: F64) -> Folded:
    """Compose ``[Requantize*] Affine [Requantize*]`` (or ``[Requantize+]``) into one float affine stage.

    Args:
        group: From :func:`group_stages`, with at least one requantize.
        m_in: Bound on the integer model's |input| per feature.
        d_in: Cumulative rounding-only error of the input per feature.
    """
    n_in = m_in.size
    col, row = np.ones(n_in), None
    m, d, inj = m_in.copy(), d_in.copy(), np.zeros(n_in)
    affine: F64 | None = None
    bias = np.zeros(n_in)
    for st in group:
        if isinstance(st, Requantize):
            f, r = st.factor, st.rounding_error
            if affine is None:
                col = col * f
            else:
                row = f if row is None else row * f
            bias = f * bias
            d, inj = f * d + r, f * inj + r
            m = np.minimum(f * m + r, _floats(st.limit))
        elif isinstance(st, Affine):
            affine = _affine_matrix(st)
            b = _floats(st.bias)
            bias = affine @ bias + b
            m, d, inj = np.abs(affine) @ m + np.abs(b), np.abs(affine) @ d, np.abs(affine) @ inj
    if affine is None:
        matrix = np.diag(col)
    else:
        matrix = affine * col[None, :]
        if row is not None:
            matrix = row[:, None] * matrix
    doubles = DOUBLE_REL * (np.abs(matrix) @ m_in + np.abs(bias))  # the folded weights are not exact in doubles
    rounding = float(np.max(inj + doubles, initial=0.0))
    can_clip = any(st.can_clip for st in group if isinstance(st, Requantize))
    return Folded(tuple(n for st in group for n in st.names), matrix, bias, m, rounding, d, can_clip)


def rounding_through(st: Lowered, m: F64, d: F64) -> F64:
    """Cumulative rounding-only error after a square or poly stage, from ``d`` before it (integers ``|y| <= m``).

    Square: ``|x² - y²| <= d (2m + d)``; poly: ``sum_i |c_i| i (m + d)**(i-1) d``.
    """
    if not np.any(d):
        return d
    if isinstance(st, Poly):
        absc = np.abs(np.asarray(st.coeffs, dtype=np.float64))
        return sum((absc[i] * i * (m + d) ** (i - 1) * d for i in range(1, absc.shape[0])), np.zeros_like(d))
    return d * (2 * m + d)
