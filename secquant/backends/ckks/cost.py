"""Operation counts of a CKKS plan, for the cost model of ``mode="auto"`` (:mod:`secquant.backends.cost`).

THROUGHPUT (per batch of N/2 inputs): one encryption per request ciphertext (per
input feature, or per pair of them with one conjugation per first-stage output) and
one decryption per output; a weighted affine stage is one plaintext product per
nonzero weight (an integer-map term when it multiplies at scale 1, priced
alike); a square is one relinearized product per feature; a polynomial its power
products and term products per feature.  LATENCY (per input): the client's
ciphertexts, the plan's rotations, one plaintext product per diagonal (a
gathered stage: per diagonal of each client ciphertext), one relinearized
product per square and per power of a polynomial.  Every level a stage drops is one rescale per ciphertext.
"""

from __future__ import annotations

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.ckks.plan import CKKSPlan
from secquant.backends.ckks.stages import StageKind
from secquant.backends.cost import OpCounts

__all__ = ["op_counts"]


def op_counts(plan: CKKSPlan) -> OpCounts:
    """SEAL operations of one batch of ``plan``."""
    latency = plan.options.mode is Mode.LATENCY
    first = plan.stages[0].stage if plan.stages else None
    counts = {"encryptions": plan.input_copies if latency else plan.request_ciphertexts_per_batch,
              "decryptions": 1 if latency else (plan.stages[-1].stage.n_out if plan.stages else 0),
              "plain_products": 0,
              "key_switches": plan.key_switches() if latency else  # paired: a conjugation per first-stage output
                  (first.n_out if plan.paired_inputs and first is not None else 0),
              "additions": 0, "rescales": 0}
    for sp in plan.stages:
        st = sp.stage
        width = 1 if latency else st.n_in
        if st.kind is StageKind.SQUARE:
            counts["key_switches"] += width
        elif st.kind is StageKind.POLY and sp.poly is not None:
            counts["key_switches"] += len(sp.poly.products) * width
            counts["plain_products"] += len(sp.poly.terms) * width
        elif st.weighted and st.matrix is not None:
            if latency:
                n = sp.gather.plaintexts if sp.gather is not None else len(sp.layout.diagonals) if sp.layout else 1
            else:
                n = int(np.count_nonzero(st.matrix))
            counts["plain_products"] += n
            counts["additions"] += n
        counts["rescales"] += sp.levels * (1 if latency else st.n_out)
    return OpCounts(1 if latency else plan.slots, plan.poly_degree, len(plan.primes) - 1, 1, **counts)
