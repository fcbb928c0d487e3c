"""A conservative estimate of the BFV invariant noise budget, stage by stage (key-less).

The figures are SEAL's heuristics made conservative, in bits:

* fresh budget ``log2 q - log2 t - log2(N)/2 - 5`` (measured: 5 bits higher);
* a ciphertext multiplication with relinearization costs ``log2 t + log2 N + 2``;
* a scalar multiply-accumulate ``log2(max row L1 norm of A mod t, centered) + 1``;
* a multiply by a batch-encoded plaintext ``log2 t + log2(N)/2 + log2(#diagonals)/2 + 3``,
  plus 2 bits for the rotations of a latency stage.

The real budget is reported by the client after decryption
(``BFVClient.last_noise_budget``); the tests check that the estimate stays below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.bfv.layout import LatencyLayout
from secquant.backends.bfv.plan import Affine, Poly, Square, Stage, stage_name
from secquant.quant.intops import max_abs

__all__ = ["FRESH_SLACK_BITS", "consumption", "data_bits_needed", "fresh_budget", "noise_trace"]

#: Bits the fresh-budget estimate stays below SEAL's (measured: 5).
FRESH_SLACK_BITS = 5


def fresh_budget(data_bits: float, t: int, n: int) -> float:
    """Estimated budget of a fresh encryption under ``data_bits`` bits of data primes."""
    return data_bits - math.log2(t) - math.log2(n) / 2 - FRESH_SLACK_BITS


def multiply_cost(t: int, n: int) -> float:
    """Bits one ciphertext multiplication with relinearization consumes."""
    return math.log2(t) + math.log2(n) + 2


def plain_multiply_cost(t: int, n: int, terms: int) -> float:
    """Bits a sum of ``terms`` products by batch-encoded plaintexts consumes."""
    return math.log2(t) + math.log2(n) / 2 + math.log2(max(1, terms)) / 2 + 3


def _row_l1_bits(stage: Affine, t: int) -> float:
    """log2 of the largest row L1 norm of A mod t, centered (the scalar multiply noise factor)."""
    if 2 * max_abs(stage.matrix) < t:
        return math.log2(max(1, stage.row_l1))
    a, _ = stage.reduced(t)
    a = a.astype(object)
    centered = np.where(a > t // 2, a - t, a)
    worst = int(np.max(np.sum(np.abs(centered), axis=1))) if centered.size else 0
    return math.log2(max(1, worst))


def _affine_cost(st: Affine, index: int, mode: Mode, n: int, t: int, layout: LatencyLayout | None) -> float:
    if mode is Mode.THROUGHPUT:
        return _row_l1_bits(st, t) + 1
    lay = layout.stages[index] if layout else None
    if lay is not None:
        terms = len(lay.diagonals) * lay.blocks
    elif layout is not None and layout.gather_cols is not None and index == 0:
        terms = int(layout.gather_cols.shape[1])
    else:
        terms = st.d_in
    return plain_multiply_cost(t, n, terms) + 2


def _poly_cost(st: Poly, mode: Mode, n: int, t: int) -> float:
    used = st.depth * multiply_cost(t, n)
    c = np.mod(np.asarray(st.coeffs).astype(object), t)
    if mode is Mode.THROUGHPUT or bool(np.all(c == c[:, :1])):  # scalar coefficients
        centered = np.where(c > t // 2, c - t, c)
        return used + math.log2(max(1, int(np.max(np.sum(np.abs(centered), axis=0))))) + 1
    return used + plain_multiply_cost(t, n, st.degree + 1)


def consumption(stages: Sequence[Stage], mode: Mode, n: int, t: int, layout: LatencyLayout | None) -> list[float]:
    """Estimated bits of noise budget each stage consumes under plaintext prime ``t`` in degree ``n``."""
    out = []
    for i, st in enumerate(stages):
        if isinstance(st, Affine):
            out.append(_affine_cost(st, i, mode, n, t, layout))
        elif isinstance(st, Square):
            out.append(multiply_cost(t, n))
        else:
            out.append(_poly_cost(st, mode, n, t))
    return out


def data_bits_needed(stages: Sequence[Stage], mode: Mode, n: int, t: int, layout: LatencyLayout | None,
                     margin: int) -> int:
    """Fewest bits of data primes whose fresh budget covers every stage plus ``margin``."""
    need = margin + sum(consumption(stages, mode, n, t, layout)) - fresh_budget(0.0, t, n)
    return max(1, math.ceil(need))


def noise_trace(stages: Sequence[Stage], mode: Mode, n: int, t: int, data_bits: list[int],
                layout: LatencyLayout | None, margin: int) -> list[dict[str, Any]]:
    """Estimated noise budget (bits) and data primes kept after encryption and after each stage.

    Each stage ends with a modulus switch to the fewest data primes whose
    fresh-budget cap still covers the rest of the circuit plus ``margin`` (BFV
    modulus switching keeps the budget below that cap), so later stages run on
    a shorter chain: ``data_primes`` per entry.

    Args:
        stages: The plan.
        mode: Slot layout.
        n: Ring degree N.
        t: Plaintext prime (the largest CRT prime: the worst case).
        data_bits: Bit sizes of the data primes (the special prime excluded).
        layout: The latency layout, or None in throughput mode.
        margin: Bits the estimate keeps at the end.
    """
    levels = len(data_bits)

    def cap(level: int) -> float:
        return fresh_budget(sum(data_bits[:level]), t, n)

    cons = consumption(stages, mode, n, t, layout)
    budget = cap(levels)
    trace = [{"stage": "encrypt", "budget_bits": round(budget, 1), "data_primes": levels}]
    for i, st in enumerate(stages):
        budget -= cons[i]
        rest = sum(cons[i + 1:]) + margin
        while levels > 1 and cap(levels - 1) >= rest and budget >= rest:
            levels -= 1
        budget = min(budget, cap(levels))
        trace.append({"stage": stage_name(st), "kind": st.kind.value, "budget_bits": round(budget, 1),
                      "data_primes": levels})
    return trace
