"""Degree-2 polynomials as one shifted square: one level instead of two.

A POLY stage of degree 2 costs two levels: x**2 (one rescale), then the
coefficients (a second).  When every feature's leading coefficient ``a2`` is
non-zero and a weighted affine stage ``A x + b`` follows, the square can be
completed::

    a2·x**2 + a1·x + a0 = a2·(x + s)**2 + k,   s = a1 / (2·a2),   k = a0 - a1**2 / (4·a2)

so the stage becomes ``(x + s)**2`` (a plaintext addition and one square: one
level) and ``a2`` and ``k`` fold into the next stage: ``A' = A·diag(a2)``,
``b' = b + A k``.  The identity is exact over the reals, so the next stage's
outputs are the same numbers, and its scale is still sized for them; only its
sum before the bias differs, bounded by ``|A|·(P + |k|)`` (P the polynomial's
bound, :attr:`~.stages.Stage.pre_bias`), which the planner keeps below the
modulus before and after the rescale.  The square's bound is ``(m + |s|)**2``.  A square of a shifted
value can lose precision when ``|s|`` dwarfs ``m`` (an almost linear
activation): ``max_ratio`` completes only the stages whose ``max |s|`` is at
most that many times ``max m``, and the planner plans a few such variants and
keeps the cheapest that meets the target (:func:`~.params.plan_cheapest`).
Pure: stages in, stages out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from secquant.backends.ckks.stages import Stage, StageKind
from secquant.errors import ParameterError

__all__ = ["RATIOS", "complete_squares"]

#: ``max_ratio`` values the backend tries, most completed first (each costs about 2·log2(1 + ratio) bits).
RATIOS = (float("inf"), 64.0, 16.0, 4.0)

#: Upward inflation of float bounds (as in :mod:`~.stages`).
_INFLATE = 1.0 + 1e-12


def _floats(values: object) -> NDArray[np.float64]:
    return np.array([float(v) for v in np.asarray(values).reshape(-1)], dtype=np.float64)


def _completable(st: Stage, nxt: Stage, max_ratio: float) -> bool:
    if st.kind is not StageKind.POLY or st.degree != 2 or st.coeffs is None or nxt.matrix is None:
        return False
    a2 = _floats(st.coeffs[2])
    if not np.all(a2 != 0.0):
        return False
    shift = float(np.max(np.abs(_floats(st.coeffs[1]) / (2.0 * a2))))
    return shift <= max_ratio * max(float(np.max(st.in_bound, initial=0.0)), 1.0)


def _complete(st: Stage, nxt: Stage) -> tuple[Stage, Stage]:
    """The shifted square and the next stage with ``a2`` and ``k`` folded in (module docstring)."""
    if st.coeffs is None or nxt.matrix is None:
        raise ParameterError("internal: only a degree-2 POLY followed by a weighted stage is completed")
    a0, a1, a2 = (_floats(st.coeffs[i]) for i in range(3))
    shift = a1 / (2.0 * a2)
    const = a0 - a1 * a1 / (4.0 * a2)
    m = st.in_bound
    sq_bound = (m + np.abs(shift)) ** 2 * _INFLATE
    square = replace(st, out_bound=sq_bound, coeffs=None, bias=np.array([0] * st.n_out, dtype=object),
                     partial_floor=0.0, square_shift=shift)
    matrix = nxt.matrix * a2[None, :]
    bias = _floats(nxt.bias) + nxt.matrix @ const
    pre_bias = np.abs(nxt.matrix) @ (st.out_bound + np.abs(const)) * _INFLATE  # |A (a2 (x+s)^2)| <= |A| (P + |k|)
    follow = replace(nxt, in_bound=sq_bound, matrix=matrix, bias=np.array([float(v) for v in bias], dtype=object),
                     integral=False, pre_bias=float(np.max(pre_bias, initial=0.0)))
    return square, follow


def complete_squares(stages: list[Stage], max_ratio: float = float("inf")) -> list[Stage]:
    """``stages`` with every completable degree-2 POLY stage rewritten (module docstring); others unchanged.

    Args:
        stages: The stages (before :func:`~.balance.balance`).
        max_ratio: Complete a stage only when its largest shift is at most this
            many times its largest input bound.
    """
    out = list(stages)
    for k in range(len(out) - 1):
        if _completable(out[k], out[k + 1], max_ratio):
            out[k], out[k + 1] = _complete(out[k], out[k + 1])
    return out
