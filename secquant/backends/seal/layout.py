"""Slot layouts shared by BFV and CKKS (LATENCY mode): BSGS diagonals, client gathering, tiling.

A LATENCY ciphertext holds one input, replicated with a power-of-two period
over its slots (BFV: over each of its two rows of N/2 slots, CKKS: over its
N/2 slots), so a rotation by ``i`` rotates every copy cyclically.

* :class:`BSGSLayout`: an affine stage ``A`` (``n_out x n_in``) as the hybrid
  diagonal method (GAZELLE): with ``width`` = a power of two >= n_out and
  ``period`` >= width, n_in, ``A x = sum_{i < width} diag_i ⊙ rot(x, i)`` with
  ``diag_i[j] = A[j mod width, (j + i) mod period]``, evaluated baby-step
  giant-step (``i = g·k + b``: rotations ``rot(x, b)``, one ``rot(·, g·k)`` per
  giant step against pre-rotated diagonals), then ``log2(period/width)``
  rotate-and-adds fold the row blocks.  The output repeats with period
  ``width``.  :func:`dense_bsgs` uses every diagonal and a fixed baby step
  (CKKS); :func:`search_bsgs` only the nonzero ones and the baby step that
  needs the fewest rotations and new Galois keys (BFV).
* :class:`GatherLayout`: a sparse first stage (a convolution) gathered by the
  client: output ``o`` reads inputs ``cols[o, :]`` (the sparsity pattern, the
  layer's geometry, never a weight); block ``k`` (``period`` slots) of the
  client's ciphertexts holds ``x[cols[:, k]]``, so the stage is one plaintext
  product per ciphertext and ``log2(slots/period)`` rotate-and-adds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = ["BSGSLayout", "GatherLayout", "dense_bsgs", "gather_cols", "next_pow2", "nonzero_diagonals",
           "search_bsgs", "tile"]


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def tile(values: NDArray[np.generic], period: int, slots: int) -> NDArray[np.generic]:
    """``values`` zero-padded to ``period`` and repeated over ``slots`` (a multiple of ``period``)."""
    v = np.zeros(period, dtype=np.asarray(values).dtype)
    v[: np.size(values)] = np.asarray(values).reshape(-1)
    return np.tile(v, slots // period)


def _log2_steps(first: int, count: int) -> list[int]:
    """``first << s`` for ``s < log2(count)``: the rotate-and-add steps that sum ``count`` blocks."""
    return [first << s for s in range(max(1, count).bit_length() - 1)]


@dataclass(frozen=True)
class BSGSLayout:
    """Baby-step giant-step schedule of one affine stage (see the module docstring).

    Attributes:
        diagonals: Indices i < width of the diagonals used.
        baby: The baby step g (a power of two): ``i = g·k + b``.
        period: Period of the input (n_in', a power of two >= width).
        width: Diagonals' width n_out' (a power of two): the output's period.
    """

    diagonals: tuple[int, ...]
    baby: int
    period: int
    width: int

    @property
    def baby_steps(self) -> tuple[int, ...]:
        """Rotations ``b = i mod g`` used (0 included when used)."""
        return tuple(sorted({i % self.baby for i in self.diagonals}))

    @property
    def giant_steps(self) -> tuple[int, ...]:
        """Multiples ``k = i // g`` used (0 included when used)."""
        return tuple(sorted({i // self.baby for i in self.diagonals}))

    @property
    def giant(self) -> int:
        """Number of giant steps (0 included)."""
        return len(self.giant_steps)

    @property
    def blocks(self) -> int:
        """Row blocks ``period / width`` folded by rotate-and-add."""
        return self.period // self.width

    @property
    def fold_steps(self) -> list[int]:
        """Rotations of the fold: width, 2·width, ..., period/2."""
        return _log2_steps(self.width, self.blocks)

    @property
    def steps(self) -> set[int]:
        """Every rotation step this stage uses."""
        return ({b for b in self.baby_steps if b} | {k * self.baby for k in self.giant_steps if k}
                | set(self.fold_steps))

    @property
    def rotation_steps(self) -> list[int]:
        """The step of every rotation of one evaluation: baby steps, giant steps, then the fold."""
        return ([b for b in self.baby_steps if b] + [k * self.baby for k in self.giant_steps if k]
                + list(self.fold_steps))

    @property
    def rotations(self) -> int:
        """Rotations per evaluation."""
        return len(self.rotation_steps)

    def diagonal(self, matrix: NDArray[np.generic], i: int) -> NDArray[np.generic]:
        """``diag_i[j] = A[j mod width, (j + i) mod period]`` for j < period (A zero-padded)."""
        padded = np.zeros((self.width, self.period), dtype=np.asarray(matrix).dtype)
        padded[: matrix.shape[0], : matrix.shape[1]] = matrix
        j = np.arange(self.period)
        return padded[j % self.width, (j + i) % self.period]

    def prerotated(self, matrix: NDArray[np.generic]) -> dict[tuple[int, int], NDArray[np.generic]]:
        """``(k, b) -> rot(diag_{g·k+b}, -g·k)`` (length ``period``) for every nonzero diagonal used."""
        out = {}
        for i in self.diagonals:
            diag = self.diagonal(matrix, i)
            if np.any(diag):
                k, b = divmod(i, self.baby)
                out[(k, b)] = np.roll(diag, self.baby * k)  # shifted[j] = diag[j - g·k]
        return out


def dense_bsgs(n_in: int, n_out: int, period_in: int) -> BSGSLayout:
    """Every diagonal of an ``n_out x n_in`` stage whose input repeats every ``period_in`` slots; g ≈ √width."""
    width = next_pow2(n_out)
    period = max(period_in, width, next_pow2(n_in))
    baby = next_pow2(int(np.ceil(np.sqrt(width))))
    return BSGSLayout(tuple(range(width)), baby, period, width)


def nonzero_diagonals(nonzero: NDArray[np.bool_], period: int, width: int) -> list[int]:
    """Indices i < width whose ``diag_i`` has a nonzero entry (``[0]`` for an all-zero pattern).

    Args:
        nonzero: ``A != 0``, shape (n_out, n_in) with n_out <= width and n_in <= period.
        period: The input period.
        width: The diagonals' width.
    """
    nz = np.zeros((width, period), dtype=bool)
    nz[: nonzero.shape[0], : nonzero.shape[1]] = nonzero
    j = np.arange(period)
    i = np.arange(width)
    used = np.any(nz[(j % width)[None, :], (j[None, :] + i[:, None]) % period], axis=1)
    return [int(v) for v in np.nonzero(used)[0]] or [0]


def search_bsgs(diagonals: list[int], period: int, keys: set[int] | None = None, key_weight: float = 1.0,
                width: int = 0, cost: Callable[[int], int] | None = None) -> BSGSLayout:
    """The baby step g minimizing rotations + ``key_weight`` x (steps not already in ``keys``).

    With ``cost`` (a step's key switches, e.g. its NAF weight under power-of-two
    keys), rotations are weighted by it.  Ties go to the fewest baby plus giant
    steps, then to the smaller g.
    """
    have = keys or set()
    best: tuple[float, int, BSGSLayout] | None = None
    g = 1
    while g <= period:
        cand = BSGSLayout(tuple(diagonals), g, period, width or period)
        rotations = cand.rotations if cost is None else sum(cost(s) for s in cand.rotation_steps)
        key = (rotations + key_weight * len(cand.steps - have), len(cand.baby_steps) + cand.giant)
        if best is None or key < best[:2]:
            best = (key[0], key[1], cand)
        g *= 2
    if best is None:
        raise ConfigError(f"no baby-step giant-step layout for period {period}")
    return best[2]


def gather_cols(matrix: NDArray[np.generic]) -> NDArray[np.int64]:
    """``cols[o, :]``: the inputs output ``o`` reads, in order, padded with -1 (width = the largest row support)."""
    nz = np.asarray(matrix) != 0
    width = max(1, int(nz.sum(axis=1).max()) if nz.size else 1)
    cols = np.full((nz.shape[0], width), -1, dtype=np.int64)
    for o in range(nz.shape[0]):
        idx = np.flatnonzero(nz[o])
        cols[o, : idx.size] = idx
    return cols


@dataclass(frozen=True, eq=False)
class GatherLayout:
    """Client-side gathering of a sparse first affine stage (see the module docstring).

    Attributes:
        cols: ``(n_out, K)`` input indices per output (-1: none).
        period: Block size, a power of two >= n_out; the output's period.
        slots: Slots per ciphertext the blocks fill (CKKS: N/2; BFV: N, both rows).

    Raises:
        ConfigError: a malformed pattern, or a period that does not fit the slots.
    """

    cols: NDArray[np.int64] = field(repr=False)
    period: int
    slots: int

    def __post_init__(self) -> None:
        p, s = self.period, self.slots
        if np.ndim(self.cols) != 2 or p < 1 or p & (p - 1) or p < np.shape(self.cols)[0] or s < p or s % p:
            raise ConfigError(f"a gather layout needs a 2-d pattern, a power-of-two period >= its outputs and "
                              f"slots a multiple of it; got pattern {np.shape(self.cols)}, period {p}, slots {s}")

    @classmethod
    def of(cls, matrix: NDArray[np.generic], slots: int, period: int | None = None) -> GatherLayout:
        """The gather layout of a stage matrix (period: next power of two >= its outputs by default)."""
        return cls(gather_cols(matrix), period or next_pow2(np.shape(matrix)[0]), slots)

    @property
    def width(self) -> int:
        """K: inputs read per output."""
        return int(self.cols.shape[1])

    @property
    def blocks(self) -> int:
        """Blocks per ciphertext (slots / period)."""
        return self.slots // self.period

    @property
    def chunks(self) -> int:
        """Ciphertexts per input: ceil(K / blocks)."""
        return -(-self.width // self.blocks)

    @property
    def fold_steps(self) -> list[int]:
        """Rotations that sum the blocks: period, 2·period, ..., slots/2."""
        return _log2_steps(self.period, self.blocks)

    def _lay(self, picked: NDArray[np.generic]) -> list[NDArray[np.generic]]:
        """Per ciphertext c: block k holds ``picked[:, c·blocks + k]`` (``picked``: (n_out, K))."""
        n_out, width = picked.shape
        grid = np.zeros((self.chunks * self.blocks, self.period), dtype=picked.dtype)
        grid[:width, :n_out] = picked.T
        return [grid[c * self.blocks:(c + 1) * self.blocks].reshape(-1) for c in range(self.chunks)]

    def pack(self, x: NDArray[np.generic]) -> list[NDArray[np.generic]]:
        """The client's ciphertext slots for one flattened input ``x`` (dtype kept)."""
        x = np.asarray(x).reshape(-1)
        return self._lay(np.where(self.cols >= 0, x[np.where(self.cols >= 0, self.cols, 0)], 0))

    def weights(self, matrix: NDArray[np.generic]) -> list[NDArray[np.generic]]:
        """The server's weights, block for block against :meth:`pack` (dtype kept)."""
        a = np.asarray(matrix)
        rows = np.arange(self.cols.shape[0])[:, None]
        return self._lay(np.where(self.cols >= 0, a[rows, np.where(self.cols >= 0, self.cols, 0)], 0))
