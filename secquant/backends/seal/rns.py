"""Integer linear maps on RNS ciphertexts, as float64 matrix products.

A ciphertext of SEAL (BFV or CKKS) is ``size`` polynomials, each stored as
``L`` rows of ``N`` residues (one row per prime q_l of the current level).
Multiplying ciphertexts by integer scalars and summing them is the same
integer map on every residue: ``out_i = sum_j W_ij · ct_j mod q_l``.  A layer
of ``m`` outputs over ``k`` inputs is therefore one ``(m, k) x (k, 2N)``
matrix product per prime, which BLAS does far faster than ``m·k`` separate
``multiply_plain`` calls.

Exactness: residues (< 2**60) are split into chunks of ``c`` bits, with ``c``
chosen so that every partial sum ``sum_j |W_ij|·(2**c - 1)`` stays below
2**53, where float64 arithmetic on integers is exact in any summation order.
The chunk products are reduced mod q_l and recombined by Horner's rule.  The
result is bit for bit what SEAL's ``multiply_plain`` by the constant
``W_ij mod q_l`` followed by ``add`` returns (``tests/backends/test_rns.py``).

Residues come from and go back to SEAL through :mod:`~.ciphertext`
(:func:`map_ciphertexts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.seal.ciphertext import (
    CiphertextMeta,
    Residues,
    from_bytes,
    to_bytes,
)
from secquant.backends.seal.context import sealapi
from secquant.backends.seal.serialize import scratch
from secquant.errors import ParameterError

__all__ = ["IntegerMap", "chunk_bits", "map_ciphertexts"]

#: float64 holds every integer of magnitude below this exactly.
_EXACT = 2**53
#: Columns per block, so the float copies of one block stay a few tens of MB.
_BLOCK = 2048
#: Horner's step estimates a quotient below 2**c in float64; exact to within one for c <= 50.
_MAX_CHUNK = 50


def chunk_bits(row_l1: int, modulus_bits: int) -> int:
    """Bits per residue chunk so that ``row_l1 · (2**c - 1) < 2**53`` (at most the residue width).

    Raises:
        ParameterError: the weights are too large for even a 1-bit chunk.
    """
    room = 53 - max(int(row_l1), 1).bit_length()
    if room < 1:
        raise ParameterError(f"integer weights with row sum {row_l1} are too large for exact float64 products")
    return min(room, modulus_bits, _MAX_CHUNK)


def _mul_pow2_mod(r: NDArray[np.uint64], c: int, q: int) -> NDArray[np.uint64]:
    """``r · 2**c mod q`` for ``0 <= r < q < 2**61`` and ``c <= 50``, with uint64 arithmetic.

    The quotient is estimated in float64 (off by at most one for these sizes),
    the remainder computed modulo 2**64 (exact, as it lies in (-2q, 2q)) and
    corrected.
    """
    quot = np.floor(r.astype(np.float64) * (2.0**c / q)).astype(np.uint64)
    rem = ((r << np.uint64(c)) - quot * np.uint64(q)).view(np.int64)
    rem = np.where(rem < 0, rem + q, rem)
    return np.where(rem >= q, rem - q, rem).astype(np.uint64)


class IntegerMap:
    """``y = W x`` on RNS ciphertexts, for an integer matrix ``W`` (exact).

    Rows are grouped by their support, so a convolution (each output reads a
    small window) costs its nonzero products, not a dense ``m x k`` product.

    Args:
        weights: ``(m, k)`` integers, each of magnitude below 2**53.

    Raises:
        ParameterError: a weight is not an integer below 2**53 in magnitude.
    """

    def __init__(self, weights: NDArray[Any]) -> None:
        w = np.asarray(weights)
        if w.ndim != 2:
            raise ParameterError(f"an integer map needs a 2-d weight matrix, got shape {w.shape}")
        as_obj = w.astype(object)
        if any(not isinstance(v, (int, np.integer)) or abs(int(v)) >= _EXACT for v in as_obj.ravel()):
            raise ParameterError("integer-map weights must be integers below 2**53 in magnitude")
        self.weights = as_obj.astype(np.int64)
        self.shape = self.weights.shape
        self.row_l1 = int(np.max(np.sum(np.abs(self.weights), axis=1), initial=0))
        self.groups = self._groups()
        self._inputs_used = (np.unique(np.concatenate([cols for _, cols, _ in self.groups]))
                             if self.groups else np.zeros(0, dtype=np.intp))

    def _groups(self) -> list[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]]:
        """``(rows, cols, W[rows][:, cols] as float64)`` per distinct support; one dense group if cheaper."""
        by_support: dict[bytes, list[int]] = {}
        for i, row in enumerate(self.weights):
            cols = np.flatnonzero(row)
            if cols.size:
                by_support.setdefault(cols.astype(np.int64).tobytes(), []).append(i)
        work = sum(len(rows) * (len(key) // 8) for key, rows in by_support.items())
        m, k = self.shape
        if not by_support or len(by_support) == 1 or work * 2 >= m * k:
            rows = np.flatnonzero(np.any(self.weights != 0, axis=1))
            cols = np.flatnonzero(np.any(self.weights != 0, axis=0))
            pairs = [(rows, cols)] if rows.size else []
        else:
            pairs = [(np.array(rows), np.frombuffer(key, dtype=np.int64).astype(np.intp))
                     for key, rows in by_support.items()]
        return [(r, c, self.weights[np.ix_(r, c)].astype(np.float64)) for r, c in pairs]

    def apply(self, inputs: Sequence[NDArray[np.uint64]], moduli: Sequence[int]) -> list[NDArray[np.uint64] | None]:
        """``sum_j W_ij · inputs[j] mod q_l`` for every row i (None for an all-zero row).

        Args:
            inputs: ``k`` arrays ``(size, L, N)`` of residues, or
                :class:`~.ciphertext.PackedRows` (rows decoded in turn: this loop
                reads every row of every input once, prime by prime).
            moduli: The ``L`` primes of the level, in the arrays' order.

        Raises:
            ParameterError: shapes or moduli do not match.
        """
        m, k = self.shape
        if len(inputs) != k or k == 0:
            raise ParameterError(f"integer map {self.shape} applied to {len(inputs)} inputs")
        shape = inputs[0].shape
        if len(shape) != 3 or shape[1] != len(moduli) or any(a.shape != shape for a in inputs):
            raise ParameterError("integer map: ciphertexts differ in shape or from the moduli's level")
        if any(int(q) >= 2**61 for q in moduli):
            raise ParameterError("integer map: primes must be below 2**61")
        outputs: list[NDArray[np.uint64] | None] = [None] * m
        for rows, _, _ in self.groups:
            for i in rows:
                outputs[i] = np.empty(shape, dtype=np.uint64)
        size, _, n = shape
        for level, q in enumerate(int(v) for v in moduli):
            c = chunk_bits(self.row_l1, q.bit_length())
            for s in range(size):
                for start in range(0, n, _BLOCK):
                    self._block(inputs, outputs, (s, level, slice(start, min(start + _BLOCK, n))), q, c)
        return outputs

    def _block(self, inputs: Sequence[NDArray[np.uint64]], outputs: list[NDArray[np.uint64] | None],
               where: tuple[int, int, slice], q: int, c: int) -> None:
        """One block of residues (polynomial s, prime l, a slice of coefficients) for every row."""
        width = where[2].stop - where[2].start
        x = np.empty((len(inputs), width), dtype=np.uint64)
        for j in self._inputs_used.tolist():
            x[j] = inputs[j][where]
        n_chunks = -(-q.bit_length() // c)
        mask = np.uint64((1 << c) - 1)
        parts = np.empty((len(inputs), n_chunks * width))  # chunk t of input j at columns [t·width, (t+1)·width)
        for t in range(n_chunks):
            parts[:, t * width:(t + 1) * width] = (x >> np.uint64(c * t)) & mask
        sums = np.zeros((self.shape[0], n_chunks * width))
        for rows, cols, w in self.groups:
            sums[rows] = w @ parts[cols]
        acc = None
        for t in reversed(range(n_chunks)):
            p = _reduce(sums[:, t * width:(t + 1) * width], q)
            acc = p if acc is None else _add_mod(_mul_pow2_mod(acc, c, q), p, q)
        for i, out in enumerate(outputs):
            if out is not None and acc is not None:
                out[where] = acc[i]


def _reduce(p: NDArray[np.float64], q: int) -> NDArray[np.uint64]:
    """Exact integers ``|p| < 2**53`` (as float64) reduced into [0, q)."""
    if q <= _EXACT:
        p = np.fmod(p, float(q))  # exact: fmod of doubles never rounds
    r = p.astype(np.int64)
    r[r < 0] += q
    return r.view(np.uint64)


def _add_mod(a: NDArray[np.uint64], b: NDArray[np.uint64], q: int) -> NDArray[np.uint64]:
    s = a + b  # both < q < 2**61: no wrap
    return np.where(s >= np.uint64(q), s - np.uint64(q), s)



def map_ciphertexts(imap: IntegerMap, xs: Sequence[Any], context: Any,
                    moduli: Mapping[tuple[int, ...], Sequence[int]],
                    zero: Callable[[CiphertextMeta], Any], consume: bool = False, load: bool = True) -> list[Any]:
    """``W · xs`` on SEAL ciphertexts (or their parsed :data:`~.ciphertext.Residues`), exactly.

    The residues are read from SEAL's bytes, mapped by ``imap`` and loaded
    back; an all-zero row of ``W`` becomes ``zero(meta)``.

    Args:
        imap: The integer map W.
        xs: ``k`` ciphertexts, or ``k`` :data:`~.ciphertext.Residues` (all at one level).
        context: The SEALContext the outputs are loaded under.
        moduli: Primes of each level, keyed by ``parms_id``.
        zero: An encryption of zero at the inputs' level and scale.
        consume: Empty ``xs`` (a list) once the map is computed, so that the inputs can be freed
            before the outputs are loaded (a throughput batch's first stage holds both otherwise).
        load: Load the outputs into SEAL (True), or return each nonzero row as its
            :data:`~.ciphertext.Residues` for the caller to load one at a time (SEAL's memory
            pool never returns what it once held, so a whole layer loaded at once stays resident).

    Raises:
        ParameterError: shapes or moduli do not match the map.
    """
    io = scratch()
    res: list[Residues] = [x if isinstance(x, tuple) else from_bytes(io.dump(x)) for x in xs]
    meta = res[0][0]
    arrays = imap.apply([d for _, d in res], moduli[tuple(meta.parms_id)])
    del res
    if consume and isinstance(xs, list):
        xs.clear()
    sa = sealapi()
    out = []
    for i, a in enumerate(arrays):  # load each output and free its residues at once: one copy, not two
        arrays[i] = None
        if a is None:
            out.append(zero(meta))
        elif load:
            out.append(io.load(sa.Ciphertext(context), context, to_bytes(meta, a), "ciphertext"))
        else:
            out.append((meta, a))
        del a
    return out
