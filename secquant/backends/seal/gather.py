"""Client-side gathering of a sparse first stage, with rows shared between outputs (CKKS, LATENCY).

A convolution's output ``o`` reads a patch of the input: ``cols[o, :]``, the
stage's sparsity pattern.  The client can send those patches already laid out,
so that the server needs almost no rotation.  But every output channel reads the
same patch at the same position: laying out one patch per *output*, as
:class:`~secquant.backends.seal.layout.GatherLayout` does, sends each patch once
per channel.  :class:`SharedGather` sends each distinct patch once.

Layout.  The outputs are grouped: the outputs of a group read a subset of one
*row* of inputs, ``cols[u, :]`` (for a convolution, a row is a position's patch
and a group is that position's channels).  The client's slot ``t·block + u`` (of
the concatenated ciphertexts, ``slots`` each) holds ``x[cols[u, t]]``: the
``t``-th input of row ``u``, with ``block`` >= the number of rows (a power of
two keeps the diagonals few; the number of rows itself packs tightest).

The server's stage is then a hybrid-diagonal product (GAZELLE) over the
client's slot vector, which is not replicated (its period is ``slots``):
output ``o`` takes ``A[o, cols[u, t]]·X[s]`` from slot ``s = t·block + u`` of
its chunk, which is diagonal ``i = (s - o) mod period`` at slot
``(s - i) mod slots``.  For a convolution with ``C`` channels over ``P``
positions, ``i = (t·block - c·P) mod period`` takes at most ``C·period/block``
values (4 for TenSEAL's MNIST network, whose 4 channels of 64 positions fill
256 slots), so the product is a few baby-step giant-step rotations, then
``log2(slots/period)`` rotate-and-adds that fold the row blocks and leave the
output repeated with period ``period``, ready for the next stage.

What the client learns is the grouping and each row's inputs: the pattern the
planner passes in, which is the stage's geometric support
(:mod:`secquant.quant.support`), so no zero weight shows.  On a bare
``A != 0`` pattern (the building block's own tests) the rows still hide
some zeros: under
:attr:`Rows.NESTED` an output whose pattern is a subset of another's (a channel
with a zero weight in its kernel, where another channel reads the whole patch)
joins that row, with a zero weight, so that zero does not show; it can also
join a border patch to a neighbour's row, which scatters the diagonals, so
:attr:`Rows.SHARED` (equal patterns only) is weighed too.  :attr:`Rows.RESIDUE`
groups a channel-major convolution's outputs by position and sends each
position the union of its channels' inputs, so a zero weight shows only if
it is zero in every channel, however the zeros fall.  The diagonals and
rotation steps follow from the pattern, never from a weight's value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from secquant.backends.seal.layout import BSGSLayout, gather_cols, next_pow2
from secquant.errors import ConfigError

__all__ = ["Rows", "SharedGather", "channel_periods", "residue_rows", "shared_rows"]


def _is_pow2(n: int) -> bool:
    return n >= 1 and not n & (n - 1)


class Rows(enum.Enum):
    """How outputs are grouped into gathered rows."""

    PER_OUTPUT = "per_output"  #: one row per output (GatherLayout's layout)
    SHARED = "shared"  #: outputs that read the same inputs share a row (a position's channels)
    NESTED = "nested"  #: an output whose inputs are a subset of a row's joins it (a zero weight hides)
    RESIDUE = "residue"  #: outputs equal modulo ``every`` share the union of their inputs (channel-major positions)


def shared_rows(cols: NDArray[np.int64], nested: bool = True) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Group outputs by their input sets: ``(rows' cols, each output's row)``.

    Args:
        cols: ``(n_out, K)`` input indices per output, padded with -1 (:func:`gather_cols`).
        nested: A set contained in an earlier row joins it (largest sets become rows first);
            else only equal sets share a row.

    Returns:
        ``(cols_u, rows)``: ``cols_u[u]`` the inputs of row ``u`` in increasing order
        (padded with -1), ``rows[o]`` the row of output ``o``; rows are numbered in order
        of first use.
    """
    sets = [frozenset(int(c) for c in row if c >= 0) for row in np.asarray(cols)]
    order = sorted(range(len(sets)), key=lambda o: (-len(sets[o]), o)) if nested else range(len(sets))
    reps: list[frozenset[int]] = []
    index: dict[frozenset[int], int] = {}
    rows = np.zeros(len(sets), dtype=np.int64)
    for o in order:
        s = sets[o]
        if s not in index:
            home = next((u for u, r in enumerate(reps) if s <= r), None) if nested else None
            if home is None:
                home = len(reps)
                reps.append(s)
            index[s] = home
        rows[o] = index[s]
    first = {int(u): o for o, u in reversed(list(enumerate(rows)))}  # rows renumbered by first output
    renumber = np.zeros(max(len(reps), 1), dtype=np.int64)
    for new, u in enumerate(sorted(first, key=first.__getitem__)):
        renumber[u] = new
    width = max([len(r) for r in reps] + [1])
    cols_u = np.full((max(len(reps), 1), width), -1, dtype=np.int64)
    for u, r in enumerate(reps):
        cols_u[renumber[u], : len(r)] = sorted(r)
    return cols_u, renumber[rows]


def residue_rows(cols: NDArray[np.int64], every: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row ``o mod every`` for output ``o``: the union of the inputs of its class.

    A convolution's outputs are channel-major, so with ``every`` = its positions a
    row is a position's patch whatever zeros its channels' kernels hold.

    Raises:
        ConfigError: ``every`` is not in [1, n_out].
    """
    n_out = int(np.shape(cols)[0])
    if not 1 <= every <= n_out:
        raise ConfigError(f"rows by residue need 1 <= every <= {n_out}, got {every}")
    unions: list[set[int]] = [set() for _ in range(every)]
    for o, row in enumerate(np.asarray(cols)):
        unions[o % every].update(int(c) for c in row if c >= 0)
    width = max([len(u) for u in unions] + [1])
    cols_u = np.full((every, width), -1, dtype=np.int64)
    for u, members in enumerate(unions):
        cols_u[u, : len(members)] = sorted(members)
    return cols_u, np.arange(n_out, dtype=np.int64) % every


def channel_periods(cols: NDArray[np.int64], max_channels: int = 64) -> list[int]:
    """Position counts ``P = n_out / C`` that look like a channel-major convolution's.

    For every channel count ``C`` in [2, max_channels] dividing ``n_out``, the
    classes ``o mod P`` must read at most twice the inputs any one output reads:
    a position's channels share a patch (up to their zero weights), while a
    class that mixes positions reads several patches.

    Args:
        cols: ``(n_out, K)`` input indices per output, padded with -1 (:func:`gather_cols`).
        max_channels: Largest channel count tried.
    """
    cols = np.asarray(cols)
    n_out, largest = int(cols.shape[0]), max(1, int(np.max(np.sum(cols >= 0, axis=1), initial=0)))
    out = []
    for c in range(2, max_channels + 1):
        if n_out % c == 0:
            every = n_out // c
            classes = cols.reshape(c, every, -1).transpose(1, 0, 2).reshape(every, -1)
            if all(np.unique(row[row >= 0]).size <= 2 * largest for row in classes):
                out.append(every)
    return out


def _baby_step(diagonals: tuple[int, ...], period: int, chunks: int) -> int:
    """The power of two g minimizing ``chunks`` x (baby rotations) + giant rotations; ties: the smaller g."""
    best: tuple[int, int] | None = None
    g = 1
    while g <= period:
        babies = len({i % g for i in diagonals} - {0})
        giants = len({i // g for i in diagonals} - {0})
        cost = chunks * babies + giants
        if best is None or cost < best[0]:
            best = (cost, g)
        g *= 2
    return best[1] if best is not None else 1


@dataclass(frozen=True, eq=False)
class SharedGather:
    """A gathered first stage whose outputs share rows (see the module docstring).

    Attributes:
        cols: ``(n_rows, K)`` input indices of each row (-1: none).
        rows: ``(n_out,)`` the row each output reads.
        block: Slots per gathered input, >= n_rows and <= slots.
        period: The output's period, a power of two >= n_out.
        slots: Slots per ciphertext (CKKS: N/2), a multiple of ``block`` and ``period``.

    Raises:
        ConfigError: a malformed pattern, or sizes that do not fit.
    """

    cols: NDArray[np.int64] = field(repr=False)
    rows: NDArray[np.int64] = field(repr=False)
    block: int
    period: int
    slots: int

    def __post_init__(self) -> None:
        c, r, s = np.asarray(self.cols), np.asarray(self.rows), self.slots
        problems = []
        if c.ndim != 2 or r.ndim != 1 or not c.size or not r.size:
            problems.append(f"a 2-d pattern and 1-d rows (got {c.shape} and {r.shape})")
        elif c.dtype.kind not in "iu" or r.dtype.kind not in "iu" or c.min() < -1 or r.min() < 0 \
                or r.max() >= c.shape[0]:
            problems.append("integer inputs >= -1 and rows that index the pattern")
        if not (_is_pow2(self.period) and _is_pow2(s)) or not 1 <= self.block <= s or self.period > s:
            problems.append(f"a power-of-two period and slots, block and period <= slots (got {self.block}, "
                            f"{self.period}, {s})")
        elif c.ndim == 2 and r.ndim == 1 and (self.block < c.shape[0] or self.period < r.size):
            problems.append(f"block >= rows ({c.shape[0]}) and period >= outputs ({r.size})")
        if problems:
            raise ConfigError("a shared gather layout needs " + "; ".join(problems))

    @classmethod
    def of(cls, matrix: NDArray[np.generic], slots: int, rows: Rows = Rows.NESTED,
           tight: bool = False, every: int = 0) -> SharedGather:
        """The layout of a stage matrix.

        Args:
            matrix: ``(n_out, n_in)``; its nonzero pattern is gathered.
            slots: Slots per ciphertext.
            rows: How outputs share rows (:class:`Rows`); PER_OUTPUT puts each row in a block
                of the output's period, as GatherLayout does.
            tight: A block of exactly the number of rows (fewest ciphertexts, usually more
                diagonals) rather than the next power of two.
            every: RESIDUE: the number of rows (a convolution's positions).

        Raises:
            ConfigError: RESIDUE with ``every`` outside [1, n_out].
        """
        cols = gather_cols(matrix)
        n_out = np.shape(matrix)[0]
        period = next_pow2(n_out)
        if rows is Rows.PER_OUTPUT:
            return cls(cols, np.arange(n_out, dtype=np.int64), period, period, slots)
        if rows is Rows.RESIDUE:
            cols, which = residue_rows(cols, every)
        else:
            cols, which = shared_rows(cols, nested=rows is Rows.NESTED)
        return cls(cols, which, cols.shape[0] if tight else next_pow2(cols.shape[0]), period, slots)

    @property
    def width(self) -> int:
        """K: inputs per row."""
        return int(self.cols.shape[1])

    @property
    def chunks(self) -> int:
        """Ciphertexts per input: ceil(K·block / slots)."""
        return -(-self.width * self.block // self.slots)

    @cached_property
    def _entries(self) -> tuple[NDArray[np.int64], ...]:
        """``(o, input, chunk, diagonal, slot)`` of every (output, input) pair of the pattern."""
        rows = np.asarray(self.rows)
        o, t = np.nonzero(np.asarray(self.cols)[rows] >= 0)
        g = t * self.block + rows[o]
        chunk, s = np.divmod(g, self.slots)
        i = (s - o) % self.period
        return o, np.asarray(self.cols)[rows[o], t], chunk, i, (s - i) % self.slots

    @cached_property
    def bsgs(self) -> BSGSLayout:
        """The diagonals the pattern uses, over a period of ``slots``, with the cheapest baby step."""
        diagonals = tuple(sorted({int(i) for i in self._entries[3]})) or (0,)
        return BSGSLayout(diagonals, _baby_step(diagonals, self.period, self.chunks), self.slots, self.period)

    @property
    def fold_steps(self) -> list[int]:
        """Rotations that sum the row blocks: period, 2·period, ..., slots/2."""
        return self.bsgs.fold_steps

    @property
    def rotation_steps(self) -> list[int]:
        """The step of every rotation of one evaluation: each chunk's baby steps, the giant steps, the fold."""
        lay = self.bsgs
        return ([b for _ in range(self.chunks) for b in lay.baby_steps if b]
                + [k * lay.baby for k in lay.giant_steps if k] + list(lay.fold_steps))

    @property
    def plaintexts(self) -> int:
        """Plaintext products of one evaluation: the (chunk, diagonal) pairs the pattern uses."""
        _, _, chunk, i, _ = self._entries
        return len(set(zip(chunk.tolist(), i.tolist()))) or 1

    def pack(self, x: NDArray[np.generic]) -> list[NDArray[np.generic]]:
        """The client's ciphertext slots for one flattened input ``x`` (dtype kept)."""
        x = np.asarray(x).reshape(-1)
        cols = np.asarray(self.cols)
        u, t = np.nonzero(cols >= 0)
        flat = np.zeros(self.chunks * self.slots, dtype=x.dtype)
        flat[t * self.block + u] = x[cols[u, t]]
        return list(flat.reshape(self.chunks, self.slots))

    def plaintext_vectors(self, matrix: NDArray[np.generic]) -> dict[tuple[int, int, int], NDArray[np.float64]]:
        """``(chunk, k, b) -> rot(diag_{g·k+b} of the chunk, -g·k)`` for every diagonal the pattern uses.

        Raises:
            ConfigError: ``matrix`` reads an input outside the pattern (its weights would be dropped).
        """
        a = np.asarray(matrix, dtype=np.float64)
        o, col, chunk, i, j = self._entries
        outside = np.count_nonzero(a) - np.count_nonzero(a[o, col])
        if a.shape[0] != self.rows.size or outside:
            raise ConfigError(f"a matrix of shape {a.shape} with {outside} weights outside the gather pattern")
        lay = self.bsgs
        out: dict[tuple[int, int, int], NDArray[np.float64]] = {}
        for c, d in sorted(set(zip(chunk.tolist(), i.tolist()))):
            pick = (chunk == c) & (i == d)
            diag = np.zeros(self.slots)
            diag[j[pick]] = a[o[pick], col[pick]]
            k, b = divmod(d, lay.baby)
            out[(c, k, b)] = np.roll(diag, lay.baby * k)
        return out
