"""BFV latency mode: one input per ciphertext row, repeated with the plan's period M.

Each of the two rows of N/2 slots holds one input repeated with period M (a
power of two), so rotating a row by i rotates every copy cyclically.
``y = A x`` is the generalized-diagonal product ``sum_i diag_i * rot(x, i)``
evaluated baby-step giant-step (:class:`~secquant.backends.seal.layout.BSGSLayout`):
rotations ``rot(x, b)`` for b < g, products in NTT form against pre-rotated
diagonals, one rotation by ``g*k`` per giant step.  A first affine stage
gathered by the client (:class:`~secquant.backends.seal.layout.GatherLayout`
over all N slots, one input per ciphertext) is one plaintext product per
ciphertext and rotate-and-adds, the last of which swaps the rows.  Galois keys
exist for exactly those steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.bfv.kit import PrimeKit, accumulate, finish, powers, scalar_mul
from secquant.backends.bfv.plan import Affine, Poly
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.layout import BSGSLayout, GatherLayout, tile

__all__ = ["NTT_CACHE_BYTES", "DiagAffine", "GatherAffine", "diag_affine", "gather_affine", "latency_affine",
           "latency_gather", "latency_poly", "pack_latency", "unpack_latency"]

#: Per stage and prime, keep the NTT forms of the diagonals when they fit in this many bytes.
NTT_CACHE_BYTES = 256 * 2**20


def pack_latency(x: NDArray[Any], period: int, n: int) -> NDArray[Any]:
    """Slots for up to two flat inputs (rows of ``x``): each padded to ``period`` and repeated over its row."""
    half = n // 2
    slots = np.zeros(n, dtype=object)
    for r in range(min(2, x.shape[0])):
        slots[r * half:(r + 1) * half] = tile(np.asarray(x[r], dtype=object), period, half)
    return slots


def unpack_latency(slots: NDArray[Any], d_out: int, n: int) -> NDArray[Any]:
    """The two outputs of one latency ciphertext, shape (2, d_out)."""
    half = n // 2
    return np.stack([slots[:d_out], slots[half:half + d_out]])


def _fold(kit: PrimeKit, y: Any, steps: list[int]) -> None:
    """``y += rot(y, s)`` for each step (a step of N/2 swaps the two rows)."""
    sa, ev = seal(), kit.evaluator
    tmp = sa.Ciphertext()
    for step in steps:
        if step == kit.slots // 2:
            ev.rotate_columns(y, kit.galois, tmp)
        else:
            ev.rotate_rows(y, step, kit.galois, tmp)
        ev.add_inplace(y, tmp)


def _switch(kit: PrimeKit, ct: Any, target: list[int] | None) -> None:
    if target is not None and list(ct.parms_id()) != target:
        kit.evaluator.mod_switch_to_inplace(ct, target)  # rotate on the shorter chain


# --------------------------------------------------------------------- diagonals
@dataclass(eq=False)
class DiagAffine:
    """An affine stage as encoded pre-rotated diagonals (and their NTT forms, cached when small)."""

    layout: BSGSLayout
    plains: dict[tuple[int, int], Any]  # (k, b) -> plaintext of rot(diag_{gk+b}, -gk)
    bias: Any  # plaintext or None
    cache: bool = False  # keep NTT forms (N * primes * 8 bytes each)
    ntt: dict[tuple[int, int, tuple[int, ...]], Any] = field(default_factory=dict)


def diag_affine(kit: PrimeKit, stage: Affine, lay: BSGSLayout) -> DiagAffine:
    """Encode the diagonals of ``stage`` (weights mod t) for layout ``lay``."""
    a, b = stage.reduced(kit.t)
    n = kit.slots
    plains = {kb: kit.encode(tile(diag, lay.period, n)) for kb, diag in lay.prerotated(a).items()}
    bias = kit.encode(tile(b, lay.width, n)) if np.any(b) else None
    primes = len(kit.context.first_context_data().parms().coeff_modulus())
    return DiagAffine(lay, plains, bias, len(plains) * n * primes * 8 <= NTT_CACHE_BYTES)


def _baby_rotations(kit: PrimeKit, prog: DiagAffine, x: Any) -> dict[int, Any]:
    """``rot(x, b)`` in NTT form for every baby step some diagonal uses."""
    sa, ev, lay = seal(), kit.evaluator, prog.layout
    babies: dict[int, Any] = {}
    for b in lay.baby_steps:
        if not any((k, b) in prog.plains for k in lay.giant_steps):
            continue
        r = sa.Ciphertext()
        if b == 0:
            ev.transform_to_ntt(x, r)
        else:
            ev.rotate_rows(x, b, kit.galois, r)
            ev.transform_to_ntt_inplace(r)
        babies[b] = r
    return babies


def _ntt_plain(kit: PrimeKit, prog: DiagAffine, k: int, b: int, pid: Any, scratch: Any) -> Any:
    """The NTT form of diagonal plaintext (k, b) at level ``pid`` (cached, or in ``scratch``)."""
    key = (k, b, tuple(pid))
    ntt = prog.ntt.get(key)
    if ntt is None:
        ntt = seal().Plaintext() if prog.cache else scratch
        kit.evaluator.transform_to_ntt(prog.plains[(k, b)], pid, ntt)
        if prog.cache:
            prog.ntt[key] = ntt
    return ntt


def _giant_step(kit: PrimeKit, prog: DiagAffine, babies: dict[int, Any], k: int, pid: Any) -> Any | None:
    """``sum_b rot(x, b) * rot(diag_{gk+b}, -gk)`` out of NTT form, or None when no diagonal is used."""
    sa, ev = seal(), kit.evaluator
    scratch, prod, inner = sa.Plaintext(), sa.Ciphertext(), None
    for b in prog.layout.baby_steps:
        if (k, b) not in prog.plains:
            continue
        ntt = _ntt_plain(kit, prog, k, b, pid, scratch)
        if inner is None:
            inner = sa.Ciphertext()
            ev.multiply_plain(babies[b], ntt, inner)
        else:
            ev.multiply_plain(babies[b], ntt, prod)
            ev.add_inplace(inner, prod)
    if inner is not None:
        ev.transform_from_ntt_inplace(inner)
    return inner


def latency_affine(kit: PrimeKit, prog: DiagAffine, x: Any, target: list[int] | None = None) -> Any:
    """``A x + b`` baby-step giant-step; giant steps and folds run at level ``target``."""
    ev, lay = kit.evaluator, prog.layout
    babies = _baby_rotations(kit, prog, x)
    y = None
    for k in lay.giant_steps:
        inner = _giant_step(kit, prog, babies, k, x.parms_id())
        if inner is None:
            continue
        _switch(kit, inner, target)
        if k:
            ev.rotate_rows_inplace(inner, lay.baby * k, kit.galois)
        y = accumulate(kit, y, inner)
    y = finish(kit, y, None)
    _fold(kit, y, lay.fold_steps)
    return finish(kit, y, prog.bias)


def latency_poly(kit: PrimeKit, stage: Poly, period: int, x: Any) -> Any:
    """``sum_i c[i] x**i`` with per-feature coefficients tiled with ``period`` (scalar when uniform)."""
    sa, ev = seal(), kit.evaluator
    c = np.mod(np.asarray(stage.coeffs).astype(object), kit.t)
    xs = powers(kit, x, stage.degree)
    total = None
    for i in range(1, stage.degree + 1):
        if not np.any(c[i]):
            continue
        term = sa.Ciphertext()
        if np.all(c[i] == c[i, 0]):
            scalar_mul(kit, xs[i], int(c[i, 0]), term)
        else:
            ev.multiply_plain(xs[i], kit.encode(tile(c[i], period, kit.slots)), term)
        total = accumulate(kit, total, term)
    return finish(kit, total, kit.encode(tile(c[0], period, kit.slots)) if np.any(c[0]) else None)


# --------------------------------------------------------------------- gathered first stage
@dataclass(eq=False)
class GatherAffine:
    """A client-gathered first stage: one weight plaintext per input ciphertext, folds, bias."""

    weights: list[Any]
    folds: list[int]  # rotate-and-add steps over all N slots; N/2 swaps the rows
    bias: Any


def gather_affine(kit: PrimeKit, stage: Affine, gather: GatherLayout) -> GatherAffine:
    """Encode the weights (mod t) block for block against the client's packing."""
    a, b = stage.reduced(kit.t)
    weights = [kit.encode(w) for w in gather.weights(a)]
    bias = kit.encode(tile(b, gather.period, kit.slots)) if np.any(b) else None
    return GatherAffine(weights, gather.fold_steps, bias)


def latency_gather(kit: PrimeKit, prog: GatherAffine, cts: list[Any], target: list[int] | None = None) -> Any:
    """The gathered stage on one input's ciphertexts; the folds run at level ``target``."""
    sa, ev = seal(), kit.evaluator
    z = sa.Ciphertext()
    ev.multiply_plain(cts[0], prog.weights[0], z)
    prod = sa.Ciphertext()
    for ct, w in zip(cts[1:], prog.weights[1:]):
        ev.multiply_plain(ct, w, prod)
        ev.add_inplace(z, prod)
    _switch(kit, z, target)
    _fold(kit, z, prog.folds)
    return finish(kit, z, prog.bias)
