"""BFV and requantized models: an exact refusal that says what the model would need instead.

BFV computes mod t and cannot round or compare, so the requantize op of
operation quantization (``floor((x·M + 2**(s-1)) / 2**s)``, clipped) has no
exact BFV circuit.  A model with requantize ops is refused with
:class:`RequantizedModelError`, which names the ops, estimates the modulus the
same network would need *without* requantization (what ``requantize=None``
gives: exact, with growing bits) and the alternatives: CKKS, which evaluates
the requantized model within a stated error bound, or ``requantize=None``.

The estimate (:func:`unrequantized_bits`) undoes every requantize op: the
integers of the non-requantized model are those of this one, before any clip,
times a per-feature blow-up G (``1 / (M/2**s)`` at a requantize, squared by a
square, to the degree by a polynomial, the largest over a row's inputs by an
affine stage, whose inputs the converter brings to one scale).  It is computed
in log2 so that thousands of bits do not overflow.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from secquant.errors import UnsupportedLayerError
from secquant.quant.lowering import Affine, Poly, Requantize, Square, Stage

__all__ = ["RequantizedModelError", "refuse_requantize", "unrequantized_bits"]

#: The largest plaintext modulus BFV reaches here: CRT over this many 60-bit primes (sizes for the message).
_PRIME_BITS = 60


class RequantizedModelError(UnsupportedLayerError):
    """BFV is exact and cannot evaluate a requantize op (a rounding); the model was quantized with one.

    Attributes:
        ops: Names of the requantize ops.
        bits_without_requantize: Estimated bits of the modulus the same network needs with ``requantize=None``.
    """

    def __init__(self, ops: list[str], bits_without_requantize: int) -> None:
        self.ops = list(ops)
        self.bits_without_requantize = int(bits_without_requantize)
        super().__init__([f"{op}: a requantize op (it rounds; BFV computes exactly mod t and cannot)" for op in ops])
        primes = math.ceil(self.bits_without_requantize / _PRIME_BITS)
        shown = ", ".join(self.ops[:4]) + (f" and {len(self.ops) - 4} more" if len(self.ops) > 4 else "")
        self.args = ((
            f"BFV cannot evaluate this model: it requantizes ({shown}), and BFV computes exactly mod t, "
            "so it cannot round. Alternatives: compile(qm, 'ckks') evaluates the requantized model within a "
            "stated error bound; or quantize again with requantize=None for an exact BFV model, whose bounds "
            f"then need a plaintext modulus of about 2**{self.bits_without_requantize} ({primes} CRT prime(s) "
            f"of {_PRIME_BITS} bits, each a full run of the circuit, and a modulus chain as deep as the model)."),)


def _log2_abs(values: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return np.log2(np.abs(values))


def _logsumexp2(terms: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """``log2(sum 2**terms)`` along ``axis`` (-inf terms are zeros)."""
    top = np.max(terms, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    total = np.sum(np.exp2(terms - safe), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log2(total) + safe, axis=axis)


def _ints_log2(values: NDArray[np.object_]) -> NDArray[np.float64]:
    return np.array([math.log2(abs(int(v))) if int(v) else -math.inf for v in np.asarray(values).reshape(-1)])


def _affine(st: Affine, n: NDArray[np.float64], g: NDArray[np.float64],
            pos: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(log2 bound, log2 blow-up) per output; inputs known non-negative (``pos``) are bounded by interval arithmetic."""
    a = np.asarray(st.matrix, dtype=object)
    mat = np.array([[math.log2(abs(int(v))) if int(v) else -math.inf for v in row] for row in a]).reshape(st.d_out, st.d_in)
    sign = np.sign(np.asarray(a, dtype=np.float64)).reshape(st.d_out, st.d_in)
    g_out = np.maximum(np.max(np.where(np.isfinite(mat), g[None, :], -math.inf), axis=1, initial=0.0), 0.0)
    terms = mat + (n - g)[None, :]  # this model's (unclipped) bound, log2
    up = np.where(pos[None, :] & (sign < 0), -math.inf, terms)  # what can push y up
    down = np.where(pos[None, :] & (sign > 0), -math.inf, terms)  # what can push y down
    bias = np.asarray(st.bias, dtype=object).reshape(-1)
    b_log = _ints_log2(bias)
    b_up = np.where(np.array([int(v) > 0 for v in bias]), b_log, -math.inf)
    b_down = np.where(np.array([int(v) < 0 for v in bias]), b_log, -math.inf)
    hi = _logsumexp2(np.concatenate([up, b_up[:, None]], axis=1), axis=1)
    lo = _logsumexp2(np.concatenate([down, b_down[:, None]], axis=1), axis=1)
    return np.maximum(hi, lo) + g_out, g_out


def _poly(st: Poly, n: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    coeffs = np.array([_ints_log2(row) for row in np.asarray(st.coeffs, dtype=object)])  # (d+1, dim)
    powers = np.arange(st.degree + 1)[:, None] * (n - g)[None, :]
    return _logsumexp2(coeffs + powers, axis=0) + st.degree * g


def unrequantized_bits(stages: list[Stage] | tuple[Stage, ...]) -> int:
    """Estimated bits of the plaintext modulus the network needs without its requantize ops (``2·B + 1``).

    Args:
        stages: The lowering of the requantized model.
    """
    if not stages:
        return 1
    n = _ints_log2(stages[0].in_bound)  # log2 of the non-requantized bound per feature
    g = np.zeros_like(n)  # log2 of its blow-up over this model's integers
    pos = np.zeros(n.shape, dtype=bool)  # features that are never negative (squares)
    top = float(np.max(n, initial=0.0))
    for st in stages:
        if isinstance(st, Affine):
            n, g = _affine(st, n, g, pos)
            pos = np.zeros(n.shape, dtype=bool)
        elif isinstance(st, Square):
            n, g, pos = 2 * n, 2 * g, np.ones(n.shape, dtype=bool)
        elif isinstance(st, Poly):
            n, g, pos = _poly(st, n, g), st.degree * g, np.zeros(n.shape, dtype=bool)
        elif isinstance(st, Requantize):  # x -> x·M/2**s here; undone: the same integers, blown up by 2**s/M
            g = g - _log2_abs(np.where(st.factor > 0, st.factor, 1.0))
        top = max(top, float(np.max(n, initial=0.0)))
    return math.ceil(top) + 1


def refuse_requantize(stages: list[Stage] | tuple[Stage, ...]) -> list[Stage]:
    """The stages without value-free requantize stages (pass-through only).

    Raises:
        RequantizedModelError: a requantize stage changes values.
    """
    rescales = [st for st in stages if isinstance(st, Requantize) and not st.is_identity]
    if rescales:
        raise RequantizedModelError([name for st in rescales for name in st.names], unrequantized_bits(stages))
    return [st for st in stages if not isinstance(st, Requantize)]
