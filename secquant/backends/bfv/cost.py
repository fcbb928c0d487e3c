"""Operation counts of a BFV plan, for the cost model of ``mode="auto"`` (:mod:`secquant.backends.cost`).

THROUGHPUT (per batch of N inputs, per CRT prime): one encryption per input
feature and one decryption per output; an affine stage is an integer map on the
ciphertexts' residues (one product-priced term per nonzero weight); a square
is one relinearized product per feature, a polynomial ``degree`` of them plus
its scalar products.  LATENCY (per ciphertext of one or two inputs): the
client's ciphertexts, the layout's rotations, one plaintext product per
diagonal (or gathered block), and one relinearized product per square (a
polynomial: ``degree``).
"""

from __future__ import annotations

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.bfv.params import BFVParameters
from secquant.backends.bfv.plan import Affine, Poly, Square, Stage
from secquant.backends.cost import OpCounts

__all__ = ["op_counts"]


def _throughput(stages: list[Stage], d_in: int) -> dict[str, int]:
    counts = {"encryptions": d_in, "decryptions": stages[-1].out_features if stages else d_in,
              "plain_products": 0, "key_switches": 0, "additions": 0}
    for st in stages:
        if isinstance(st, Affine):
            counts["plain_products"] += int(np.count_nonzero(np.asarray(st.matrix) != 0))
            counts["additions"] += st.d_out
        elif isinstance(st, Square):
            counts["key_switches"] += st.dim
        elif isinstance(st, Poly):
            counts["key_switches"] += st.degree * st.dim
            counts["plain_products"] += st.degree * st.dim
    return counts


def _latency(stages: list[Stage], params: BFVParameters) -> dict[str, int]:
    lay, gather = params.layout, params.gather
    counts = {"encryptions": gather.chunks if gather is not None else 1, "decryptions": 1,
              "plain_products": 0, "key_switches": lay.rotations(params.poly_degree) if lay else 0, "additions": 0}
    for i, st in enumerate(stages):
        bsgs = lay.stages[i] if lay is not None else None
        if isinstance(st, Affine):
            n = gather.chunks if (i == 0 and gather is not None) else len(bsgs.diagonals) if bsgs else 1
            counts["plain_products"] += n
            counts["additions"] += n
        elif isinstance(st, Square):
            counts["key_switches"] += 1
        elif isinstance(st, Poly):
            counts["key_switches"] += st.degree
            counts["plain_products"] += st.degree
    return counts


def op_counts(params: BFVParameters, stages: list[Stage], d_in: int) -> OpCounts:
    """SEAL operations of one batch of the plan ``stages`` under ``params``."""
    primes = len(params.coeff_bits) - 1
    if params.mode is Mode.THROUGHPUT:
        return OpCounts(params.poly_degree, params.poly_degree, primes, len(params.plain_moduli),
                        **_throughput(stages, d_in))
    return OpCounts(params.slots, params.poly_degree, primes, len(params.plain_moduli), **_latency(stages, params))
