"""Operation quantization: scale integers back to a target bit width between layers.

Without it, no integer is ever scaled down: every Square or Poly doubles (or
multiplies) the bits, and depth is capped by the modulus.  With it, a
:class:`~secquant.quant.intops.IntRequantize` op rescales a tensor by a
fixed-point factor ``M / 2**s`` (Jacob et al. 2018, integer-only inference),
rounds half up, and clips to ``±T``, ``T = 2**(target_bits-1) - 1``:

    y = min(T, max(-T, floor((x·M + 2**(s-1)) / 2**s)))      (y = x·M before the clip when s = 0)

So ``|y| <= T`` for every input, and the bound of every later layer is
independent of the depth before it.  ``M`` and ``s`` are chosen per channel
(per feature for flat tensors) so that ``B·M/2**s <= T`` for a range ``B``:

* ``RangeSource.CALIBRATION`` (default): B is the largest |x| on calibration
  data times ``headroom``, as integer-only inference does; inputs beyond it clip.
* ``RangeSource.PROVEN``: B is the proven worst case, so the clip never binds
  (a scheme that cannot compare, CKKS, follows it exactly up to the rounding),
  but worst-case bounds are pessimistic, and each requantize loses their
  pessimism in bits.

``M`` has ``multiplier_bits`` bits, so ``M/2**s`` is within a factor
``1 - 2**(1-multiplier_bits)`` of ``T/B``.  A tensor already proven within T
is left alone (no op).
"""

from __future__ import annotations

import math

import numpy as np

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.calibration import Symmetry
from secquant.quant.intops import IntAddConst, IntOp, IntRequantize
from secquant.quant.ops_base import IntArray, max_abs
from secquant.quant.registry import ConvState
from secquant.quant.requantize_config import RangeSource, RequantizeAt, RequantizeConfig

__all__ = ["RangeSource", "RequantizeAt", "RequantizeConfig", "choose_multiplier", "requantize_ops"]


def choose_multiplier(bound: int, limit: int, multiplier_bits: int) -> tuple[int, int]:
    """The largest ``M / 2**s`` with ``M < 2**multiplier_bits`` and ``bound·M/2**s <= limit``.

    Returns ``(1, 0)`` when ``bound <= limit`` (nothing to do).
    """
    bound, limit = int(bound), int(limit)
    if bound <= limit:
        return 1, 0
    top = 1 << multiplier_bits
    s = max(1, multiplier_bits + bound.bit_length() - limit.bit_length())
    m = (limit << s) // bound
    while m >= top:
        s -= 1
        m = (limit << s) // bound
    while m < top // 2:
        s += 1
        m = (limit << s) // bound
    return m, s


def _groups(state: ConvState) -> tuple[int, ...] | None:
    """Axes reduced to one multiplier: a channel of a multi-axis tensor with a per-channel scale, else none."""
    if len(state.shape) > 1:
        full = state.full_scale()
        axes = tuple(range(1, len(state.shape)))
        if np.all(full == full[(slice(None), *([slice(0, 1)] * len(axes)))]):
            return axes
    return None


def _per_group(m: IntArray, shape: tuple[int, ...], axes: tuple[int, ...] | None) -> IntArray:
    """Largest per-element bound ``m`` over each group."""
    m = np.broadcast_to(np.abs(np.asarray(m, dtype=object)), shape)
    return np.max(m, axis=axes, keepdims=True) if axes else np.array(m, dtype=object)


def _estimated(values: IntArray, shape: tuple[int, ...], axes: tuple[int, ...] | None,
               rq: RequantizeConfig) -> IntArray:
    """Range of |x| per group estimated by ``rq.method`` from calibration values of shape (n, *shape)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1, *shape)
    reduce = (0, *(a + 1 for a in axes)) if axes else (0,)
    lo, hi = rq.method.range(x, reduce, rq.target_bits, Symmetry.SYMMETRIC)
    m = np.maximum(np.abs(np.asarray(lo, dtype=np.float64)), np.abs(np.asarray(hi, dtype=np.float64)))
    return m.reshape(shape[0], *([1] * len(axes))) if axes else m.reshape(shape)


def requantize_ops(name: str, state: ConvState, lo: IntArray, hi: IntArray, values: IntArray | None,
                   rq: RequantizeConfig) -> tuple[list[IntOp], ConvState]:
    """The ops that bring a tensor with proven interval [lo, hi] within ±T, and its new state.

    Args:
        name: Name of the tensor's node; the ops are ``name.zero_point`` and ``name.requantize``.
        state: Its shape, scale and zero point.
        lo, hi: Its proven per-element interval.
        values: Its integers on calibration data, shape (n, *shape); needed
            with ``range_from=CALIBRATION``.
        rq: The configuration.

    A zero point is removed first (an add-const op).  Returns no ops when
    every channel is already proven within T.

    Raises:
        ConfigError: calibration values are missing.
    """
    z = exact.to_python_ints(state.full_offset()) if state.has_offset else 0
    lo, hi = np.asarray(lo, dtype=object) - z, np.asarray(hi, dtype=object) - z
    axes = _groups(state)
    proven = _per_group(np.maximum(np.abs(lo), np.abs(hi)), state.shape, axes)
    if all(int(b) <= rq.limit for b in proven.reshape(-1)):
        return [], state
    if rq.range_from is RangeSource.CALIBRATION:
        if values is None:
            raise ConfigError(f"{name}: requantizing from the calibration range needs calibration values")
        seen = _estimated(np.asarray(values, dtype=object) - z, state.shape, axes, rq)
        target = np.vectorize(lambda o, p: min(int(p), max(1, math.ceil(o * rq.headroom))), otypes=[object])(seen, proven)
    else:
        target = proven
    pairs = [choose_multiplier(int(b), rq.limit, rq.multiplier_bits) for b in target.reshape(-1)]
    mult = np.array([p[0] for p in pairs], dtype=np.int64).reshape(target.shape)
    shift = np.array([p[1] for p in pairs], dtype=np.int64).reshape(target.shape)
    op = IntRequantize(name=f"{name}.requantize", multiplier=mult, shift=shift, limit=np.full(target.shape, rq.limit, np.int64))
    ops: list[IntOp] = []
    if state.has_offset:
        ops.append(IntAddConst(name=f"{name}.zero_point", constant=exact.as_exact(-z, max_abs(z) + 1)))
    scale = np.asarray(state.scale, dtype=np.float64) * op.factor
    return [*ops, op], ConvState(shape=state.shape, scale=scale, offset=np.zeros((), np.int64))
