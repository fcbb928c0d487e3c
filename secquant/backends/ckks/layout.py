"""Slot layouts of the CKKS stages in LATENCY mode (THROUGHPUT needs none: no rotation at all).

LATENCY: one input per ciphertext, replicated with a power-of-two period over
all N/2 slots.  Every affine stage is a dense hybrid-diagonal baby-step
giant-step product (:func:`~secquant.backends.seal.layout.dense_bsgs`) whose
output repeats with period ``width``, ready for the next stage; a sparse first
stage (a convolution) is gathered by the client instead
(:class:`~secquant.backends.seal.layout.GatherLayout`) when that takes at most
:data:`MAX_GATHER_CHUNKS` ciphertexts and no more server rotations.  Squares,
shifts and polynomials keep the period they receive.  Key-less.
"""

from __future__ import annotations

from dataclasses import dataclass

from secquant.backends.base import Mode
from secquant.backends.ckks.options import CKKSOptions, Transfer
from secquant.backends.ckks.stages import Stage
from secquant.backends.seal.layout import (
    BSGSLayout,
    GatherLayout,
    dense_bsgs,
    next_pow2,
)

__all__ = ["MAX_GATHER_CHUNKS", "StageLayout", "gather_for", "stage_layouts"]

#: Most ciphertexts a client sends per input for a gathered first stage.
MAX_GATHER_CHUNKS = 4


@dataclass(frozen=True)
class StageLayout:
    """Where one stage's values sit in the slots.

    Attributes:
        period: Period of the stage's input replication (LATENCY; the input's own otherwise).
        bsgs: LATENCY affine stage: its diagonal layout.
        gather: LATENCY first affine stage gathered by the client.
    """

    period: int
    bsgs: BSGSLayout | None = None
    gather: GatherLayout | None = None

    @property
    def period_out(self) -> int:
        """Period of the stage's output."""
        if self.gather is not None:
            return self.gather.period
        return self.bsgs.width if self.bsgs is not None else self.period


def gather_for(st: Stage, opts: CKKSOptions, n: int, period: int) -> GatherLayout | None:
    """The gathered layout of a LATENCY first stage, when it is allowed and rotates less than BSGS."""
    if (opts.mode is not Mode.LATENCY or not opts.client_gather or st.matrix is None
            or next_pow2(st.n_out) > n // 2):
        return None
    gather = GatherLayout.of(st.matrix, n // 2)
    if gather.chunks > MAX_GATHER_CHUNKS:
        return None
    bsgs = dense_bsgs(st.n_in, st.n_out, period)
    server_rotations = bsgs.rotations - ((bsgs.baby - 1) if opts.client_rotations else 0)
    folds = len(gather.fold_steps) * (2 if opts.transfer is Transfer.BALANCED else 1)  # BALANCED: halve them
    return gather if folds <= server_rotations else None


def stage_layouts(stages: list[Stage], opts: CKKSOptions, n: int) -> list[StageLayout]:
    """The layout of every stage in degree ``n`` (only periods in THROUGHPUT)."""
    period = next_pow2(stages[0].n_in) if stages else 1
    out = []
    for i, st in enumerate(stages):
        lay = StageLayout(period)
        if opts.mode is Mode.LATENCY and st.weighted:
            gather = gather_for(st, opts, n, period) if i == 0 else None
            lay = (StageLayout(period, gather=gather) if gather is not None
                   else StageLayout(period, bsgs=dense_bsgs(st.n_in, st.n_out, period)))
        out.append(lay)
        period = lay.period_out
    return out
