"""Per-feature scales for CKKS stages whose features differ by orders of magnitude (laid-out graphs).

A ciphertext has one scale.  When a graph is laid out as a chain
(:func:`secquant.quant.linearize.linearize`), one stage can carry a skip-path
value of 2**47 next to requantized features of 2**9: the scale is sized for
the largest, and the small features keep almost no precision.  :func:`balance`
holds every feature of a stage's output at a common magnitude instead: CKKS
carries ``r_j · v_j`` for feature j, with ``r_j = max_k B_k / B_j`` (B the
feature's bound), and folds the factors into the weights that produce and
consume it (an affine stage: ``diag(r_out) A diag(1/r_in)``, its bias
``r_out ⊙ b``; a polynomial: ``c_i · r_out / r_in**i``; a square: ``r_out = r_in²``, its shift ``r_in·s``;
a shift keeps ``r``).  The input and the last stage's output keep r = 1, so
the client encodes and decodes integers as before.  No level is spent; errors
and bounds are planned in the balanced units, and the last stage is in output
integers again.  Stages whose features are within :data:`SPREAD` of each other
are left as they are.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from secquant.backends.ckks.stages import Stage, StageKind

__all__ = ["SPREAD", "balance"]

#: Balance only when some stage's output bounds differ by more than this factor.
SPREAD = 2.0**12

F64 = NDArray[np.float64]


def _spread(bound: F64) -> float:
    positive = bound[bound > 0]
    return float(np.max(positive) / np.min(positive)) if positive.size else 1.0


def _normalizer(bound: F64) -> F64:
    top = float(np.max(bound, initial=0.0))
    return np.where(bound > 0, top / np.maximum(bound, 1e-300), 1.0)


def _floats(values: object) -> F64:
    return np.array([float(v) for v in np.asarray(values).reshape(-1)], dtype=np.float64)


def _objects(values: F64) -> NDArray[np.object_]:
    return np.array([float(v) for v in values], dtype=object)


def _affine(st: Stage, r: F64, r_out: F64) -> Stage:
    if st.matrix is None:  # a shift: the features keep their factors
        return replace(st, in_bound=st.in_bound * r, out_bound=st.out_bound * r, bias=_objects(r * _floats(st.bias)),
                       rounding=st.rounding * float(np.max(r, initial=1.0)))
    matrix = r_out[:, None] * st.matrix / r[None, :]
    return replace(st, in_bound=st.in_bound * r, out_bound=st.out_bound * r_out, matrix=matrix,
                   pre_bias=st.pre_bias * float(np.max(r_out, initial=1.0)),
                   bias=_objects(r_out * _floats(st.bias)), rounding=st.rounding * float(np.max(r_out, initial=1.0)),
                   integral=st.integral and bool(np.all(r == 1) and np.all(r_out == 1)))


def _poly(st: Stage, r: F64, r_out: F64) -> Stage:
    c = np.array([[float(v) for v in row] for row in np.asarray(st.coeffs)], dtype=np.float64)
    scaled = np.array([r_out * c[i] / r**i for i in range(c.shape[0])])
    per_feature = _floats(st.source.partial_bound) * (st.partial_floor / max(float(st.source.partial_max), 1.0))
    return replace(st, in_bound=st.in_bound * r, out_bound=st.out_bound * r_out,
                   coeffs=np.array([_objects(row) for row in scaled], dtype=object), bias=_objects(scaled[0]),
                   partial_floor=float(np.max(per_feature * r_out, initial=0.0)))


def balance(stages: list[Stage]) -> list[Stage]:
    """The stages with every feature of every inner stage output at a common magnitude (module docstring).

    Returns ``stages`` unchanged when no stage's features spread by more than
    :data:`SPREAD`, or when the last stage is not affine (its output must stay
    in integers).
    """
    if (not stages or stages[-1].kind is not StageKind.AFFINE
            or all(_spread(st.out_bound) <= SPREAD for st in stages[:-1])):
        return stages
    r = np.ones(stages[0].n_in)
    out: list[Stage] = []
    for k, st in enumerate(stages):
        last = k == len(stages) - 1
        if st.kind is StageKind.SQUARE:  # (r x + r s)**2 = r**2 (x + s)**2
            r_out = r * r
            shift = None if st.square_shift is None else st.square_shift * r
            out.append(replace(st, in_bound=st.in_bound * r, out_bound=st.out_bound * r_out, square_shift=shift))
        elif st.kind is StageKind.POLY:
            r_out = _normalizer(st.out_bound)
            out.append(_poly(st, r, r_out))
        else:
            r_out = np.ones(st.n_out) if last else (_normalizer(st.out_bound) if st.matrix is not None else r)
            out.append(_affine(st, r, r_out))
        r = r_out
    return out
