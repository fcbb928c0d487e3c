"""The sparsity pattern of a layer: which inputs each output reads (its geometry, never a weight)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["gather_cols"]


def gather_cols(matrix: NDArray[np.generic]) -> NDArray[np.int64]:
    """``cols[o, :]``: the inputs output ``o`` reads, in order, padded with -1 (width = the largest row support).

    Used by the latency layouts of BFV and CKKS, whose clients pack their
    inputs block by block in this order, so a first-layer convolution needs
    no rotation but the few that sum the blocks.
    """
    nz = np.asarray(matrix) != 0
    width = max(1, int(nz.sum(axis=1).max()) if nz.size else 1)
    cols = np.full((nz.shape[0], width), -1, dtype=np.int64)
    for o in range(nz.shape[0]):
        idx = np.flatnonzero(nz[o])
        cols[o, : idx.size] = idx
    return cols
