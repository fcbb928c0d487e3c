"""The BFV circuit plan: the stages of the shared lowering, and their exact run mod t.

The stages are :func:`secquant.quant.lowering.lower`'s: consecutive affine ops
composed into one exact integer map ``y = A x + b`` over flattened features
(composition changes no decoded value, and every intermediate lies in the ring
Z_t anyway); ``square`` and ``poly`` stay element-wise; a model with
requantize ops is refused (:mod:`~.requantize`).  A stage that changes
no value (a flatten alone) costs nothing and is dropped.  The plan is key-less
integer data; :mod:`~.evaluate` runs it on ciphertexts and :func:`simulate_mod`
on residues mod t.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.quant.lowering import Affine, Poly, Square, Stage, StageKind, lower
from secquant.quant.model import QuantizedModel

__all__ = ["Affine", "Poly", "Square", "Stage", "StageKind", "build_plan", "simulate_mod", "stage_name"]


def build_plan(qm: QuantizedModel) -> list[Stage]:
    """The stages BFV evaluates: the lowering without the stages that change no value.

    Graph models (residual adds, concatenations) arrive laid out as chains by
    the lowering.  Requantize ops are refused: BFV is exact and cannot round.

    Raises:
        UnsupportedLayerError: an op no encrypted backend evaluates.
        RequantizedModelError: the model requantizes (an ``UnsupportedLayerError``
            naming the modulus the model needs without it, and the alternatives).
    """
    from secquant.backends.bfv.requantize import refuse_requantize

    return [st for st in refuse_requantize(lower(qm)) if not (isinstance(st, Affine) and st.is_reshape)]


def stage_name(stage: Stage) -> str:
    """The names of the ops a stage evaluates, joined by ``+``."""
    return "+".join(stage.names)


def simulate_mod(stages: list[Stage], xq: NDArray[Any], t: int) -> NDArray[np.int64]:
    """Run the plan on residues mod ``t`` (exact; Python ints inside), flat features.

    Args:
        stages: From :func:`build_plan`.
        xq: Integers of shape (n, d_in).
        t: The plaintext modulus.

    Returns:
        Residues in [0, t) of shape (n, d_out).
    """
    x = np.mod(np.asarray(xq).astype(object), t)
    for st in stages:
        if isinstance(st, Affine):
            a, b = st.reduced(t)
            x = np.mod(x.dot(a.T.astype(object)) + b.astype(object), t)
        elif isinstance(st, Square):
            x = np.mod(x * x, t)
        else:
            c = st.reduced(t).astype(object)
            total = np.zeros_like(x) + c[0]
            power = np.ones_like(x)
            for i in range(1, st.degree + 1):
                power = np.mod(power * x, t)
                total = np.mod(total + c[i] * power, t)
            x = total
    return np.asarray(x, dtype=np.int64)
