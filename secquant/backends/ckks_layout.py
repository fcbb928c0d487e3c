"""Slot layouts of the two CKKS modes and the rotations they need.

LATENCY: one input per ciphertext, replicated with a power-of-two period over
all N/2 slots.  An affine stage ``A`` (n_out x n_in) pads to ``n_out'`` =
next power of two >= n_out and ``n_in'`` = max(period, n_out'), and uses the
hybrid diagonal method (GAZELLE): ``t = sum_{d < n_out'} diag_d ⊙ rot(x, d)``
with ``diag_d[i] = A'[i mod n_out'][(i + d) mod n_in']``, evaluated with baby
steps ``b < b1`` and giant steps ``g·b1`` (``n_out'`` = b1·n_g), then
``log2(n_in'/n_out')`` rotate-and-adds fold the row blocks.  The output is
replicated with period ``n_out'``, ready for the next stage.

THROUGHPUT: feature ``j`` of every input in ciphertext ``j``, inputs across
slots (CryptoNets); no rotations at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["DiagLayout", "diag_layout", "next_pow2"]


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
