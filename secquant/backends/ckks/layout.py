"""Slot layouts of the CKKS stages in LATENCY mode (THROUGHPUT needs none: no rotation at all).

LATENCY: one input per ciphertext, replicated with a power-of-two period over
all N/2 slots.  Every affine stage is a hybrid-diagonal baby-step giant-step
product whose output repeats with period ``width``, ready for the next stage.
Only its nonzero diagonals are used, and the baby step is searched
(:func:`~secquant.backends.seal.layout.search_bsgs`) for the fewest key
switches, preferring steps whose Galois keys an earlier stage already needs: a
convolution's matrix has a few clusters of diagonals, not ``width`` of them.
A first stage whose baby-step rotations the client sends
(``client_rotations``) keeps the dense layout, whose baby steps are all of
``0..g-1``.  A sparse first stage (a convolution) is gathered by the client
instead (:class:`~secquant.backends.seal.gather.SharedGather`) when that takes
at most :data:`MAX_GATHER_CHUNKS` ciphertexts and fewer server rotations
(:func:`gather_for`): under ``transfer=LATENCY`` one row per output (no
rotation but the fold), otherwise one row per distinct patch (a convolution's
channels share it: fewer ciphertexts, a few more rotations), and under
``transfer=BYTES`` only a gather that fits one ciphertext.
Squares, shifts and polynomials keep the period they receive.

:func:`rotation_keys` then chooses the Galois keys
(:class:`~secquant.backends.seal.galois.RotationKeys`) and attaches them to
every layout, so the noise bound counts the key switches each rotation takes.
Key-less.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.ckks.options import CKKSOptions, Transfer
from secquant.backends.ckks.stages import Stage
from secquant.backends.seal.galois import GaloisKeys, RotationKeys, naf
from secquant.backends.seal.gather import Rows, SharedGather, channel_periods
from secquant.backends.seal.layout import (
    BSGSLayout,
    dense_bsgs,
    gather_cols,
    next_pow2,
    nonzero_diagonals,
    search_bsgs,
)

__all__ = ["MAX_GATHER_CHUNKS", "StageLayout", "fold_first", "gather_for", "rotation_keys", "server_steps",
           "stage_layouts"]

#: Most ciphertexts a client sends per input for a gathered first stage.
MAX_GATHER_CHUNKS = 4
#: The gathers :func:`gather_for` weighs, as ``(rows, tight)`` of :meth:`SharedGather.of`: one row
#: per output; one per pattern, or per nest of patterns, in power-of-two or tight blocks.
GATHER_KINDS = ((Rows.PER_OUTPUT, False), (Rows.SHARED, False), (Rows.SHARED, True), (Rows.NESTED, False),
                (Rows.NESTED, True))


@dataclass(frozen=True)
class StageLayout:
    """Where one stage's values sit in the slots.

    Attributes:
        period: Period of the stage's input replication (LATENCY; the input's own otherwise).
        bsgs: LATENCY affine stage: its diagonal layout.
        gather: LATENCY first affine stage gathered by the client.
        keys: The plan's Galois keys (LATENCY, once chosen), else None.
        client_baby: The client sends this stage's baby-step rotations.
    """

    period: int
    bsgs: BSGSLayout | None = None
    gather: SharedGather | None = None
    keys: RotationKeys | None = None
    client_baby: bool = False

    def switches(self, steps: list[int], worst: bool = False) -> int:
        """Key switches of rotating by each of ``steps`` (``worst``: the most any one takes)."""
        if self.keys is None:
            return min(len(steps), 1) if worst else len(steps)
        return self.keys.worst(steps) if worst else self.keys.total(steps)

    @property
    def server_steps(self) -> list[int]:
        """Steps of every rotation the server makes in this stage."""
        if self.gather is not None:
            return self.gather.rotation_steps
        if self.bsgs is None:
            return []
        lay = self.bsgs
        if self.client_baby:  # the client sent rot(x, b) for every b < g
            return [k * lay.baby for k in lay.giant_steps if k] + list(lay.fold_steps)
        return lay.rotation_steps

    @property
    def period_out(self) -> int:
        """Period of the stage's output."""
        if self.gather is not None:
            return self.gather.period
        return self.bsgs.width if self.bsgs is not None else self.period


def fold_first(opts: CKKSOptions) -> bool:
    """Whether an affine stage folds its row blocks before its rescale: under ``transfer=BYTES``.

    Folding first adds the rescale's noise once instead of once per block (5
    bits for a gathered 32-block fold), which lets BYTES choose narrower
    primes; the fold's rotations then run with one more prime, which costs the
    other transfers about 7 % on TenSEAL's MNIST network.
    """
    return opts.transfer is Transfer.BYTES


def gather_for(st: Stage, opts: CKKSOptions, n: int, period: int) -> SharedGather | None:
    """The gathered layout of a LATENCY first stage, when it is allowed and rotates less than BSGS.

    The candidates are one row per output, one row per distinct patch (or nest
    of patches), and one row per position for every channel count dividing the
    outputs, in power-of-two or tight blocks (:data:`GATHER_KINDS`,
    :class:`~secquant.backends.seal.gather.SharedGather`), each within
    :data:`MAX_GATHER_CHUNKS` ciphertexts and making fewer server rotations than
    baby-step giant-step (under BALANCED at most half as many: gathering costs
    request bytes).  LATENCY takes the one with the fewest rotations, BALANCED
    the fewest ciphertexts (then rotations), BYTES only one that fits one
    ciphertext, as BSGS does.
    """
    if (opts.mode is not Mode.LATENCY or not opts.client_gather or st.matrix is None
            or next_pow2(st.n_out) > n // 2):
        return None
    bsgs = dense_bsgs(st.n_in, st.n_out, period)
    server_rotations = bsgs.rotations - ((bsgs.baby - 1) if opts.client_rotations else 0)
    factor = 2 if opts.transfer is Transfer.BALANCED else 1
    kinds = [(rows, tight, 0) for rows, tight in GATHER_KINDS]
    pattern = st.pattern
    kinds += [(Rows.RESIDUE, tight, every) for every in channel_periods(gather_cols(pattern))
              for tight in (False, True)]
    layouts: dict[tuple[int, bytes, bytes], SharedGather] = {}
    for rows, tight, every in kinds:  # the same rows by another rule are weighed once
        g = SharedGather.of(pattern, n // 2, rows, tight, every)
        layouts.setdefault((g.block, np.asarray(g.rows).tobytes(), np.asarray(g.cols).tobytes()), g)
    found = [g for g in layouts.values()
             if g.chunks <= MAX_GATHER_CHUNKS and factor * len(g.rotation_steps) <= server_rotations
             and (opts.transfer is not Transfer.BYTES or g.chunks == 1)]
    if opts.transfer is Transfer.LATENCY:
        return min(found, key=lambda g: (len(g.rotation_steps), g.chunks), default=None)
    return min(found, key=lambda g: (g.chunks, len(g.rotation_steps)), default=None)


def _naf_weight(step: int) -> int:
    return len(naf(step))


def _sparse_bsgs(st: Stage, period_in: int, keys: set[int], policy: GaloisKeys) -> BSGSLayout:
    """The nonzero diagonals of ``st``, with the baby step of fewest key switches (see the module docstring)."""
    dense = dense_bsgs(st.n_in, st.n_out, period_in)
    if st.matrix is None:
        return dense
    diagonals = nonzero_diagonals(st.pattern, dense.period, dense.width)
    if policy is GaloisKeys.POWERS_OF_TWO:
        return search_bsgs(diagonals, dense.period, key_weight=0.0, width=dense.width, cost=_naf_weight)
    return search_bsgs(diagonals, dense.period, keys, width=dense.width)


def stage_layouts(stages: list[Stage], opts: CKKSOptions, n: int,
                  policy: GaloisKeys = GaloisKeys.STEPS) -> list[StageLayout]:
    """The layout of every stage in degree ``n`` (only periods in THROUGHPUT), keys not yet attached.

    ``policy`` (STEPS or POWERS_OF_TWO) says what a rotation costs to the baby-step search.
    """
    period = next_pow2(stages[0].n_in) if stages else 1
    out = []
    keys: set[int] = set()
    for i, st in enumerate(stages):
        lay = StageLayout(period)
        if opts.mode is Mode.LATENCY and st.weighted:
            gather = gather_for(st, opts, n, period) if i == 0 else None
            client_baby = i == 0 and opts.client_rotations
            if gather is not None:
                lay = StageLayout(period, gather=gather)
            elif client_baby:
                lay = StageLayout(period, bsgs=dense_bsgs(st.n_in, st.n_out, period), client_baby=True)
            else:
                lay = StageLayout(period, bsgs=_sparse_bsgs(st, period, keys, policy))
            keys |= set(lay.server_steps)
        out.append(lay)
        period = lay.period_out
    return out


def server_steps(layouts: list[StageLayout]) -> set[int]:
    """Every rotation step the server makes (the client's own baby steps excluded)."""
    return {s for lay in layouts for s in lay.server_steps}


def _auto_keys(stages: list[Stage], opts: CKKSOptions, n: int, key_bytes: int, steps: set[int]) -> RotationKeys:
    """AUTO: one key per step, unless those exceed the budget and power-of-two keys are at most half as many."""
    slots, budget = n // 2, opts.galois_key_budget_bytes
    mib = f"{len(steps)} step keys ({len(steps) * key_bytes / 2**20:.0f} MiB)"
    if len(steps) * key_bytes <= budget:
        return RotationKeys.make(steps, slots, GaloisKeys.STEPS, f"auto: {mib} fit the {budget / 2**20:.0f} MiB budget")
    powers = RotationKeys.make(server_steps(stage_layouts(stages, opts, n, GaloisKeys.POWERS_OF_TWO)), slots,
                               GaloisKeys.POWERS_OF_TWO)
    if 2 * len(powers.steps) > len(steps):
        return RotationKeys.make(steps, slots, GaloisKeys.STEPS,
                                 f"auto: {mib} exceed the {budget / 2**20:.0f} MiB budget, but power-of-two keys "
                                 f"would be {len(powers.steps)}, not half as many")
    return RotationKeys(slots, powers.steps, GaloisKeys.POWERS_OF_TWO,
                        f"auto: {mib} exceed the {budget / 2**20:.0f} MiB budget; {len(powers.steps)} "
                        "power-of-two keys instead")


def rotation_keys(stages: list[Stage], opts: CKKSOptions, n: int, key_bytes: int,
                  ) -> tuple[list[StageLayout], RotationKeys]:
    """The layouts of degree ``n`` with their Galois keys attached (see :class:`~.options.CKKSOptions`).

    Args:
        stages: The stages.
        opts: ``galois_keys`` and ``galois_key_budget_bytes`` decide.
        n: N.
        key_bytes: Uncompressed bytes of one Galois key at this degree and chain.
    """
    slots = n // 2
    policy = opts.galois_keys
    layouts = stage_layouts(stages, opts, n, GaloisKeys.POWERS_OF_TWO if policy is GaloisKeys.POWERS_OF_TWO
                            else GaloisKeys.STEPS)
    steps = server_steps(layouts)
    if policy is GaloisKeys.STEPS:
        keys = RotationKeys.make(steps, slots, policy, "asked for: one key per step")
    elif policy is GaloisKeys.POWERS_OF_TWO:
        keys = RotationKeys.make(steps, slots, policy, "asked for: keys for the NAF terms of the steps only")
    else:
        keys = _auto_keys(stages, opts, n, key_bytes, steps)
        if keys.policy is GaloisKeys.POWERS_OF_TWO:
            layouts = stage_layouts(stages, opts, n, GaloisKeys.POWERS_OF_TWO)
            keys = RotationKeys.make(server_steps(layouts), slots, GaloisKeys.POWERS_OF_TWO, keys.reason)
    return [replace(lay, keys=keys) for lay in layouts], keys
