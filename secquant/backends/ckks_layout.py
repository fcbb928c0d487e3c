"""Slot layouts of the two CKKS modes and the rotations they need.

LATENCY: one input per ciphertext, replicated with a power-of-two period over
all N/2 slots.  An affine stage ``A`` (n_out x n_in) pads to ``n_out'`` =
next power of two >= n_out and ``n_in'`` = max(period, n_out'), and uses the
hybrid diagonal method (GAZELLE): ``t = sum_{d < n_out'} diag_d ⊙ rot(x, d)``
with ``diag_d[i] = A'[i mod n_out'][(i + d) mod n_in']``, evaluated with baby
steps ``b < b1`` and giant steps ``g·b1`` (``n_out'`` = b1·n_g), then
``log2(n_in'/n_out')`` rotate-and-adds fold the row blocks.  The output is
replicated with period ``n_out'``, ready for the next stage.

LATENCY, first stage, when it is sparse (a convolution): the client gathers.
Output ``o`` reads inputs ``cols[o, :]`` (the sparsity pattern: the layer's
geometry, never a weight); block ``k`` (``period`` slots) of the client's
ciphertexts holds ``x[cols[:, k]]``, so the stage is one plaintext product per
ciphertext and ``log2(slots/period)`` rotate-and-adds that sum the blocks
(:class:`GatherLayout`), leaving the output replicated with period ``period``.

THROUGHPUT: feature ``j`` of every input in ciphertext ``j``, inputs across
slots (CryptoNets); no rotations at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secquant.backends.sparsity import gather_cols

__all__ = ["DiagLayout", "GatherLayout", "diag_layout", "next_pow2"]


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class DiagLayout:
    """Hybrid-diagonal baby-step giant-step layout of one affine stage.

    Attributes:
        period_in: Period of the input replication (power of two).
        n_in_pad: n_in' (a multiple of period_in).
        n_out_pad: n_out' = number of diagonals = output period.
        baby: b1, baby steps 0..b1-1.
        giant: n_g, giant steps g·b1 for g < n_g.
    """

    period_in: int
    n_in_pad: int
    n_out_pad: int
    baby: int
    giant: int

    @property
    def blocks(self) -> int:
        """n_in' / n_out': row blocks folded by rotate-and-add."""
        return self.n_in_pad // self.n_out_pad

    @property
    def fold_steps(self) -> list[int]:
        """Rotations of the fold: n_in'/2, n_in'/4, ..., n_out'."""
        steps, s = [], self.n_in_pad // 2
        while s >= self.n_out_pad:
            steps.append(s)
            s //= 2
        return steps

    @property
    def steps(self) -> list[int]:
        """Every rotation step this stage uses."""
        baby = list(range(1, self.baby))
        giant = [g * self.baby for g in range(1, self.giant)]
        return sorted(set(baby + giant + self.fold_steps))

    @property
    def rotations(self) -> int:
        """Rotations per evaluation."""
        return (self.baby - 1) + (self.giant - 1) + len(self.fold_steps)

    def diagonals(self, matrix: NDArray[np.float64], slots: int) -> list[list[NDArray[np.float64]]]:
        """Pre-rotated diagonals ``u[g][b] = rot(diag_{g·b1+b}, -g·b1)``, tiled over ``slots``."""
        n_out, n_in = matrix.shape
        padded = np.zeros((self.n_out_pad, self.n_in_pad))
        padded[:n_out, :n_in] = matrix
        rows = np.arange(self.n_in_pad) % self.n_out_pad
        reps = slots // self.n_in_pad
        out: list[list[NDArray[np.float64]]] = []
        for g in range(self.giant):
            row: list[NDArray[np.float64]] = []
            for b in range(self.baby):
                d = g * self.baby + b
                diag = padded[rows, (np.arange(self.n_in_pad) + d) % self.n_in_pad]
                row.append(np.roll(np.tile(diag, reps), g * self.baby))
            out.append(row)
        return out


def diag_layout(n_in: int, n_out: int, period_in: int) -> DiagLayout:
    """The layout of an (n_out x n_in) stage whose input repeats every ``period_in`` slots."""
    n_out_pad = next_pow2(n_out)
    n_in_pad = max(period_in, n_out_pad, next_pow2(n_in))
    baby = next_pow2(int(np.ceil(np.sqrt(n_out_pad))))
    return DiagLayout(period_in, n_in_pad, n_out_pad, baby, n_out_pad // baby)


@dataclass(frozen=True, eq=False)
class GatherLayout:
    """Client-side gathering of the first affine stage (LATENCY).

    Attributes:
        cols: ``(n_out, K)`` input indices per output (-1: none).
        period: Power of two >= n_out: block size, and the output's period.
        slots: N/2.
    """

    cols: NDArray[np.int64]
    period: int
    slots: int

    @classmethod
    def of(cls, matrix: NDArray[np.float64], slots: int) -> GatherLayout:
        """The gather layout of a stage matrix."""
        return cls(gather_cols(matrix), next_pow2(matrix.shape[0]), slots)

    @property
    def blocks(self) -> int:
        """Blocks per ciphertext (slots / period)."""
        return self.slots // self.period

    @property
    def chunks(self) -> int:
        """Ciphertexts per input: ceil(K / blocks)."""
        return -(-self.cols.shape[1] // self.blocks)

    @property
    def fold_steps(self) -> list[int]:
        """Rotations that sum the blocks: period, 2·period, ..., slots/2."""
        return [self.period << s for s in range(self.blocks.bit_length() - 1)]

    def _blocks(self, values: NDArray[np.float64], table: NDArray[np.int64]) -> list[NDArray[np.float64]]:
        """Per ciphertext c: block k holds ``values[o, table[o, c·blocks + k]]`` at slot k·period + o."""
        n_out, width = self.cols.shape
        out = []
        for c in range(self.chunks):
            v = np.zeros((self.blocks, self.period))
            for k in range(min(self.blocks, width - c * self.blocks)):
                idx = table[:, c * self.blocks + k]
                ok = idx >= 0
                v[k, :n_out][ok] = values[np.flatnonzero(ok), idx[ok]]
            out.append(v.reshape(-1))
        return out

    def pack(self, x: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """The client's ciphertext slots for one flattened input ``x``."""
        rows = np.broadcast_to(np.asarray(x, dtype=np.float64), (self.cols.shape[0], np.asarray(x).size))
        return self._blocks(rows, self.cols)

    def plaintexts(self, matrix: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """The server's weights, block for block against :meth:`pack`."""
        return self._blocks(np.asarray(matrix, dtype=np.float64), self.cols)
