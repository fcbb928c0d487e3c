"""BFV throughput mode (CryptoNets): one ciphertext per feature, input ``s`` in slot ``s``; no rotations.

An affine map is one exact integer matrix product on the ciphertexts' residues
(:class:`~secquant.backends.seal.rns.IntegerMap`, weights centered mod t), bit
for bit what constant ``multiply_plain`` and ``add`` give; inputs are read
straight from the wire (:mod:`~secquant.backends.seal.ciphertext`).  Weights too
large for exact float64 products fall back to scalar multiply-accumulates: per
output, the inputs grouped by |weight|, summed, and each group multiplied once
by a constant plaintext.  A polynomial is evaluated per feature with scalar
coefficients (:func:`poly_feature`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from secquant.backends.bfv.kit import PrimeKit, accumulate, finish, powers, scalar_mul
from secquant.backends.bfv.plan import Affine, Poly
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.rns import IntegerMap
from secquant.errors import ParameterError

__all__ = ["MapAffine", "ScalarAffine", "map_affine", "poly_coefficients", "poly_feature", "scalar_affine",
           "throughput_affine"]


@dataclass(frozen=True, eq=False)
class ScalarAffine:
    """Per output: bias residue and [(|w| mod t, plus-indices, minus-indices)]."""

    rows: tuple[tuple[int, tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]], ...]


def scalar_affine(stage: Affine, t: int) -> ScalarAffine:
    a, b = stage.reduced(t)
    half = t // 2
    rows = []
    for o in range(stage.d_out):
        row = a[o]
        nz = np.nonzero(row)[0]
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for j in nz:
            w = int(row[j])
            mag, neg = (t - w, True) if w > half else (w, False)
            groups.setdefault(mag, ([], []))[1 if neg else 0].append(int(j))
        rows.append((int(b[o]), tuple((m, tuple(p), tuple(n)) for m, (p, n) in sorted(groups.items()))))
    return ScalarAffine(tuple(rows))


@dataclass(frozen=True, eq=False)
class MapAffine:
    """An affine stage as an integer map on residues plus per-output bias residues."""

    imap: IntegerMap
    bias: tuple[int, ...]


def map_affine(stage: Affine, t: int) -> MapAffine | None:
    """Weights centered mod t as an :class:`IntegerMap`, or None when they are too large for it."""
    a, b = stage.reduced(t)
    centered = np.where(a > t // 2, a - t, a)
    try:
        return MapAffine(IntegerMap(centered), tuple(int(v) for v in b))
    except ParameterError:
        return None


def _signed_sum(kit: PrimeKit, xs: list[Any], plus: tuple[int, ...], minus: tuple[int, ...], out: Any) -> None:
    """``out = sum xs[plus] - sum xs[minus]``; the first step out of place (pybind copies list elements)."""
    ev = kit.evaluator
    if len(plus) >= 2:
        ev.add(xs[plus[0]], xs[plus[1]], out)
        rest_plus, rest_minus = plus[2:], minus
    elif len(plus) == 1 and minus:
        ev.sub(xs[plus[0]], xs[minus[0]], out)
        rest_plus, rest_minus = (), minus[1:]
    elif len(plus) == 1:
        ev.add_many([xs[plus[0]]], out)  # one copy
        rest_plus, rest_minus = (), ()
    else:
        ev.negate(xs[minus[0]], out)
        rest_plus, rest_minus = (), minus[1:]
    for j in rest_plus:
        ev.add_inplace(out, xs[j])
    for j in rest_minus:
        ev.sub_inplace(out, xs[j])


def throughput_affine(kit: PrimeKit, prog: ScalarAffine, xs: list[Any]) -> list[Any]:
    """``A x + b`` by scalar multiply-accumulates: one constant product per distinct |weight| of a row."""
    sa, ev = seal(), kit.evaluator
    out = []
    for bias, groups in prog.rows:
        total = None
        for mag, plus, minus in groups:
            s = sa.Ciphertext()
            if len(plus) == 1 and not minus and mag != 1:
                ev.multiply_plain(xs[plus[0]], kit.constant(mag), s)
            else:
                _signed_sum(kit, xs, plus, minus, s)
                if mag != 1:
                    ev.multiply_plain_inplace(s, kit.constant(mag))
            total = accumulate(kit, total, s)
        out.append(finish(kit, total, kit.constant(bias) if bias else None))
    return out


def poly_coefficients(stage: Poly, t: int) -> tuple[tuple[int, ...], ...]:
    """Per feature, the residues mod t of its coefficients ``c[0..degree, f]``."""
    c = np.mod(np.asarray(stage.coeffs).astype(object), t)
    return tuple(tuple(int(v) for v in c[:, f]) for f in range(c.shape[1]))


def poly_feature(kit: PrimeKit, coeffs: tuple[int, ...], x: Any) -> Any:
    """``sum_i coeffs[i] x**i`` of one feature ciphertext ``x`` (coefficients mod t, scalar)."""
    xp = powers(kit, x, len(coeffs) - 1)
    total = None
    for i in range(1, len(coeffs)):
        if coeffs[i] == 0:
            continue
        term = seal().Ciphertext()
        scalar_mul(kit, xp[i], coeffs[i], term)
        total = accumulate(kit, total, term)
    return finish(kit, total, kit.constant(coeffs[0]) if coeffs[0] else None)

