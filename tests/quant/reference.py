"""An independent, loop-based evaluator of integer ops in Python ints: the oracle for forward_int.

It follows each op's documented formula one example and one element at a time,
sharing no kernel with :mod:`secquant.quant.exact`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secquant.quant.dag import INPUT, IntGraph
from secquant.quant.intops import IntOp


def _conv(x: list, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> list:
    c_in, h, wd = len(x), len(x[0]), len(x[0][0])
    o, _, kh, kw = w.shape
    ph, pw = padding

    def at(c: int, i: int, j: int) -> int:
        i, j = i - ph, j - pw
        return x[c][i][j] if 0 <= i < h and 0 <= j < wd else 0

    ho = (h + 2 * ph - kh) // stride[0] + 1
    wo = (wd + 2 * pw - kw) // stride[1] + 1
    return [[[sum(int(w[k, c, a, b]) * at(c, i * stride[0] + a, j * stride[1] + b)
                  for c in range(c_in) for a in range(kh) for b in range(kw))
              for j in range(wo)] for i in range(ho)] for k in range(o)]


def naive_op(op: IntOp, x: Any) -> Any:
    arr = np.asarray(x, dtype=object)
    if op.kind == "linear":
        return [sum(int(op.weight[k, j]) * int(arr[j]) for j in range(arr.shape[0])) + int(op.bias[k])
                for k in range(op.weight.shape[0])]
    if op.kind == "conv2d":
        out = np.asarray(_conv(arr.tolist(), op.weight, op.stride, op.padding), dtype=object)
        return (out + np.broadcast_to(np.asarray(op.bias, dtype=object), out.shape)).tolist()
    if op.kind == "sumpool2d":
        ones = np.zeros((arr.shape[0], arr.shape[0], *op.kernel), dtype=object)
        for c in range(arr.shape[0]):
            ones[c, c] = 1
        return _conv(arr.tolist(), ones, op.stride, op.padding)
    if op.kind == "flatten":
        return arr.reshape(-1).tolist()
    if op.kind == "add_const":
        return (arr + np.asarray(op.constant, dtype=object)).tolist()
    if op.kind == "conv1d":
        w = np.asarray(op.weight)[:, :, None, :]
        out = np.asarray(_conv(arr[:, None, :].tolist(), w, (1, op.stride), (0, op.padding)), dtype=object)[:, 0, :]
        return (out + np.broadcast_to(np.asarray(op.bias, dtype=object), out.shape)).tolist()
    if op.kind == "scale":
        m = np.broadcast_to(np.asarray(op.multiplier, dtype=object), arr.shape)
        return (arr * m + np.broadcast_to(np.asarray(op.bias, dtype=object), arr.shape)).tolist()
    if op.kind == "requantize":
        m = np.broadcast_to(np.asarray(op.multiplier, dtype=object), arr.shape).reshape(-1)
        sh = np.broadcast_to(np.asarray(op.shift, dtype=object), arr.shape).reshape(-1)
        lim = np.broadcast_to(np.asarray(op.limit, dtype=object), arr.shape).reshape(-1)
        flat = [naive_requantize(int(v), int(mi), int(si), int(li)) for v, mi, si, li in zip(arr.reshape(-1), m, sh, lim)]
        return np.asarray(flat, dtype=object).reshape(arr.shape).tolist()
    if op.kind == "square":
        return (arr * arr).tolist()
    if op.kind == "poly":
        coeffs = np.asarray(op.coeffs, dtype=object)
        total = np.zeros(arr.shape, dtype=object)
        for i in range(coeffs.shape[0]):
            total = total + coeffs[i] * arr**i
        return total.tolist()
    raise AssertionError(f"no reference for {op.kind}")


def naive_requantize(x: int, m: int, s: int, limit: int) -> int:
    """min(L, max(-L, floor((x·M + 2**(s-1)) / 2**s))) by Python's exact floor division (x·M when s = 0)."""
    y = x * m if s == 0 else (x * m + 2 ** (s - 1)) // 2**s
    return min(limit, max(-limit, y))


def naive_merge(op: IntOp, xs: list) -> Any:
    arrs = [np.asarray(x, dtype=object) for x in xs]
    if op.kind == "add":
        w = np.asarray(op.weights, dtype=object)
        return sum(np.broadcast_to(w[k], arrs[k].shape) * arrs[k] for k in range(len(arrs))).tolist()
    if op.kind == "concat":
        return np.concatenate(arrs, axis=op.axis).tolist()
    raise AssertionError(f"no reference for {op.kind}")


def naive_graph_forward(graph: IntGraph, xq: np.ndarray) -> np.ndarray:
    """Evaluate a graph one example at a time with Python ints."""
    outs = []
    for example in np.asarray(xq, dtype=object):
        values: dict[str, Any] = {INPUT: example}
        for node in graph.nodes:
            ins = [values[i] for i in node.inputs]
            values[node.name] = naive_op(node.op, ins[0]) if len(ins) == 1 else naive_merge(node.op, ins)
        outs.append(np.asarray(values[graph.output], dtype=object))
    return np.stack(outs)


def naive_forward(ops: tuple[IntOp, ...], xq: np.ndarray) -> np.ndarray:
    """Evaluate ops one example at a time with Python ints."""
    outs = []
    for example in np.asarray(xq, dtype=object):
        x: Any = example
        for op in ops:
            x = naive_op(op, x)
        outs.append(np.asarray(x, dtype=object))
    return np.stack(outs)
