"""The LATENCY affine stages of :class:`~.evaluate.Evaluator`: baby-step giant-step and client-gathered.

A mixin over the evaluator's primitives (encoding, fresh ciphertexts, biases),
so that the rotations, products and folds of one replicated input read in one
place.  Every product whose plaintext is absent (all-zero weights) is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.ckks.layout import fold_first
from secquant.backends.ckks.plan import CKKSPlan, StagePlan
from secquant.backends.seal.layout import BSGSLayout, tile
from secquant.errors import ParameterError

__all__ = ["LatencyStages"]


class LatencyStages:
    """Rotations, plaintext products, giant steps and folds of the LATENCY affine stages.

    The evaluator provides the SEAL evaluator (``ev``), the Galois keys, the plan, and the
    primitives below.
    """

    ev: Any
    galois: Any
    plan: CKKSPlan

    def _new(self) -> Any:
        raise NotImplementedError

    def _zero_like(self, ct: Any) -> Any:
        raise NotImplementedError

    def _parms_at(self, n_primes: int) -> Any:
        raise NotImplementedError

    def _plain(self, values: list[float] | float, parms_id: Any, scale: float) -> Any:
        raise NotImplementedError

    def _add_bias(self, ct: Any, bias: NDArray[np.float64], period: int | None) -> None:
        raise NotImplementedError

    def _sum_products(self, pairs: Iterable[tuple[Any, Any | None]], tmp: Any) -> Any | None:
        """``sum ct ⊙ pt`` over the pairs whose plaintext is not None (None when there is none); ``tmp`` is scratch."""
        acc = None
        for ct, pt in pairs:
            if pt is None:
                continue
            if acc is None:
                acc = self._new()
                self.ev.multiply_plain(ct, pt, acc)
            else:
                self.ev.multiply_plain(ct, pt, tmp)
                self.ev.add_inplace(acc, tmp)
        return acc

    def _fold(self, acc: Any, steps: list[int]) -> None:
        """``acc += rot(acc, s)`` for each step: sums the slot blocks."""
        for step in steps:
            r = self._new()
            self.ev.rotate_vector(acc, step, self.galois, r)
            self.ev.add_inplace(acc, r)

    def _affine_latency(self, xs: list[Any], sp: StagePlan, pts: dict[tuple[int, int], Any]) -> Any:
        lay = sp.layout
        if lay is None:
            raise ParameterError("internal: latency stage without layout")
        ev = self.ev
        x = xs[0]
        rots = dict(enumerate(xs))  # the client may have sent the baby-step rotations 0..g-1
        for b in lay.baby_steps:  # only the steps some nonzero diagonal uses
            if b not in rots:
                rots[b] = self._new()
                ev.rotate_vector(x, b, self.galois, rots[b])
        tmp = self._new()
        pid = self._parms_at(len(sp.level_primes))

        def plain(kb: tuple[int, int]) -> Any:
            pt = pts.get(kb)
            if isinstance(pt, np.ndarray):
                return self._plain(tile(pt, lay.period, self.plan.slots).tolist(), pid, sp.plain_scale)
            return pt

        acc = self._giant_steps(lay, lambda g: ((rots[b], plain((g, b))) for b in lay.baby_steps), tmp)
        if acc is None:  # an all-zero matrix
            acc = self._zero_like(x)
            acc.scale = x.scale * sp.plain_scale
        self._rescale_and_fold(acc, lay.fold_steps)
        self._add_bias(acc, sp.stage.bias_float(), lay.width)
        return acc

    def _rescale_and_fold(self, acc: Any, steps: list[int]) -> None:
        """Rescale, and fold the row blocks; the fold first under :func:`~.layout.fold_first` (BYTES)."""
        if fold_first(self.plan.options):  # the rescale's noise enters once, not once per block
            self._fold(acc, steps)
            self.ev.rescale_to_next_inplace(acc)
        else:  # the fold's rotations one prime cheaper
            self.ev.rescale_to_next_inplace(acc)
            self._fold(acc, steps)

    def _giant_steps(self, lay: BSGSLayout, products: Callable[[int], Iterable[tuple[Any, Any | None]]],
                     tmp: Any) -> Any | None:
        """``sum_k rot(sum products(k), g·k)`` over the giant steps ``k`` (None when every product is absent)."""
        acc = None
        for k in lay.giant_steps:
            inner = self._sum_products(products(k), tmp)
            if inner is None:
                continue
            if k:
                self.ev.rotate_vector_inplace(inner, k * lay.baby, self.galois)
            if acc is None:
                acc = inner
            else:
                self.ev.add_inplace(acc, inner)
        return acc

    def _affine_gather(self, xs: list[Any], sp: StagePlan, pts: dict[tuple[int, int, int], Any]) -> Any:
        """The client-gathered first stage (:class:`~secquant.backends.seal.gather.SharedGather`): each
        chunk's baby-step rotations, one product per (chunk, diagonal), the giant steps, a rescale and the fold
        (the fold first under :func:`~.layout.fold_first`)."""
        gather = sp.gather
        if gather is None or len(xs) != gather.chunks:
            raise ParameterError("internal: gathered stage without its layout, or the wrong number of inputs")
        ev, lay = self.ev, gather.bsgs
        rots: dict[tuple[int, int], Any] = {}
        for c, x in enumerate(xs):
            for b in lay.baby_steps:
                if b == 0:
                    rots[(c, 0)] = x
                elif any(key[0] == c and key[2] == b for key in pts):
                    rots[(c, b)] = self._new()
                    ev.rotate_vector(x, b, self.galois, rots[(c, b)])
        tmp = self._new()
        pid = self._parms_at(len(sp.level_primes))

        def plain(v: Any) -> Any:  # encoded now if the stage's plaintexts were too many to keep
            return self._plain(v.tolist(), pid, sp.plain_scale) if isinstance(v, np.ndarray) else v

        acc = self._giant_steps(lay, lambda k: ((rots[(c, b)], plain(pts[(c, kk, b)])) for (c, kk, b) in pts
                                                if kk == k), tmp)
        if acc is None:  # an all-zero matrix
            acc = self._zero_like(xs[0])
            acc.scale = xs[0].scale * sp.plain_scale
        self._rescale_and_fold(acc, gather.fold_steps)
        self._add_bias(acc, sp.stage.bias_float(), gather.period)
        return acc
