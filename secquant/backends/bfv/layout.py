"""The slot layout of BFV latency mode: period, client gathering, baby-step giant-step schedules.

Every vector repeats with the plan's period M (a power of two >= every stage
width) along each of the ciphertext's two rows of N/2 slots.  A first affine
stage is gathered by the client (one input fills both rows); every other
affine stage is a baby-step giant-step diagonal product
(:mod:`secquant.backends.seal.layout`), the largest first, later ones
preferring rotation steps whose Galois keys already exist.  Key-less; the
layout does not depend on N (only :meth:`LatencyLayout.gather` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from secquant.backends.bfv.plan import Affine, Stage
from secquant.backends.seal.layout import (
    BSGSLayout,
    GatherLayout,
    gather_cols,
    next_pow2,
    nonzero_diagonals,
    search_bsgs,
)

__all__ = ["LatencyLayout", "latency_layout"]


@dataclass(frozen=True, eq=False)
class LatencyLayout:
    """Slot layout of latency mode: every vector repeats with ``period`` along each row.

    With ``gather_cols`` (the first stage is affine), one input fills both rows
    and the first stage is computed from client-gathered blocks
    (:class:`~secquant.backends.seal.layout.GatherLayout` over all N slots: its
    last fold step, N/2, swaps the two rows); otherwise each row holds one
    input and every affine stage uses baby-step giant-step diagonals.
    """

    period: int
    stages: tuple[BSGSLayout | None, ...]
    gather_cols: NDArray[np.int64] | None = field(default=None, repr=False)

    def gather(self, n: int) -> GatherLayout | None:
        """The gathering of the first stage in a ring of degree ``n``, or None."""
        return None if self.gather_cols is None else GatherLayout(self.gather_cols, self.period, n)

    @property
    def steps(self) -> tuple[int, ...]:
        """Every baby-step giant-step rotation step (left rotations of rows)."""
        used: set[int] = set()
        for st in self.stages:
            if st is not None:
                used |= st.steps
        return tuple(sorted(used))

    def all_steps(self, n: int) -> tuple[int, ...]:
        """Row rotation steps including the gather fold (the row swap is not a row step)."""
        gather = self.gather(n)
        extra = {s for s in gather.fold_steps if s < n // 2} if gather else set()
        return tuple(sorted(set(self.steps) | extra))

    def rotations(self, n: int) -> int:
        """Key switches per evaluation (per CRT prime)."""
        total = sum(st.rotations for st in self.stages if st is not None)
        gather = self.gather(n)
        return total + (len(gather.fold_steps) if gather else 0)

    @property
    def inputs_per_ciphertext(self) -> int:
        """2 (one per row) without gathering, 1 with."""
        return 1 if self.gather_cols is not None else 2


def _hybrid(nonzero: NDArray[np.bool_], d_out: int, period: int, keys: set[int]) -> BSGSLayout:
    """The cheaper of the full-width layout and the hybrid one (out_width diagonals, then a fold)."""
    lay = search_bsgs(nonzero_diagonals(nonzero, period, period), period, keys)
    width = next_pow2(d_out)
    if width < period:
        hybrid = search_bsgs(nonzero_diagonals(nonzero, period, width), period, keys, width=width)
        if hybrid.rotations + len(hybrid.steps - keys) < lay.rotations + len(lay.steps - keys):
            lay = hybrid
    return lay


def latency_layout(stages: list[Stage], d_in: int, gather: bool = True) -> LatencyLayout:
    """Period, gathering and BSGS schedules of latency mode.

    Args:
        stages: The plan's stages.
        d_in: Input features.
        gather: Gather an affine first stage (else it is a BSGS product like the others:
            one request ciphertext per CRT prime, ``transfer=BYTES``'s choice when gathering
            takes more).
    """
    cols = gather_cols(stages[0].support) if gather and stages and isinstance(stages[0], Affine) else None
    dims = [] if cols is not None else [d_in]
    for st in stages:
        dims.append(st.d_out if isinstance(st, Affine) else st.dim)
    period = next_pow2(max(dims or [1]))
    affine = {idx: st for idx, st in enumerate(stages)
              if isinstance(st, Affine) and not (idx == 0 and cols is not None)}
    nonzero = {idx: st.support for idx, st in affine.items()}
    count = {idx: len(nonzero_diagonals(nz, period, period)) for idx, nz in nonzero.items()}
    # largest stages first; later ones prefer steps whose Galois keys already exist
    keys: set[int] = set()
    chosen: dict[int, BSGSLayout] = {}
    for idx in sorted(affine, key=lambda i: -count[i]):
        chosen[idx] = _hybrid(nonzero[idx], affine[idx].d_out, period, keys)
        keys |= chosen[idx].steps
    layouts = tuple(chosen.get(i) for i in range(len(stages)))
    return LatencyLayout(period=period, stages=layouts, gather_cols=cols)
