"""The integer operations an integer model is made of, and their serialization.

Every op works on exact integers, batch first, and has three faces:

* ``forward(x, bound)``: the exact result (the oracle for every backend);
* ``interval(lo, hi)``: exact per-element bounds of the result, given bounds of
  the input (interval arithmetic);
* ``partial_bound(m)``: per-element bound on the absolute value of every
  partial sum or product the op forms, given ``|x| <= m`` element-wise.
  Approximate schemes (CKKS) and the choice of exact arithmetic use it.

Ops never divide, except :class:`IntRequantize`, whose rounding rule is exact.
Encrypted backends dispatch on the op's class or on its ``kind``, an
:class:`OpKind` (which compares equal to its string value).  The ops live in
:mod:`~secquant.quant.ops_affine`, :mod:`~secquant.quant.ops_elementwise` and
:mod:`~secquant.quant.ops_merge`; this module gathers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secquant.errors import ArtifactError
from secquant.quant.ops_affine import (
    IntAddConst,
    IntConv1d,
    IntConv2d,
    IntFlatten,
    IntLinear,
    IntScale,
    IntSumPool2d,
)
from secquant.quant.ops_base import IntArray, IntOp, MergeOp, OpKind, max_abs
from secquant.quant.ops_elementwise import IntPoly, IntRequantize, IntSquare
from secquant.quant.ops_merge import IntAdd, IntConcat

__all__ = [
    "OP_TYPES",
    "IntAdd",
    "IntAddConst",
    "IntConcat",
    "IntConv1d",
    "IntConv2d",
    "IntFlatten",
    "IntLinear",
    "IntOp",
    "IntPoly",
    "IntRequantize",
    "IntScale",
    "IntSquare",
    "IntSumPool2d",
    "MergeOp",
    "OpKind",
    "max_abs",
    "op_from_parts",
    "op_to_parts",
]

OP_TYPES: dict[str, type[IntOp]] = {
    cls.kind.value: cls
    for cls in (IntLinear, IntConv2d, IntConv1d, IntSumPool2d, IntFlatten, IntAddConst, IntScale,
                IntSquare, IntPoly, IntRequantize, IntAdd, IntConcat)
}


def op_to_parts(op: IntOp, prefix: str, arrays: dict[str, IntArray]) -> dict[str, Any]:
    """JSON description of ``op`` whose arrays go into ``arrays`` under ``prefix.<key>``.

    :func:`op_from_parts` inverts it.
    """
    names = {}
    for key, value in op.arrays().items():
        names[key] = f"{prefix}.{key}"
        arrays[names[key]] = np.asarray(value)
    return {"kind": op.kind.value, "name": op.name, "attrs": op.attrs(), "arrays": names}


def op_from_parts(kind: str, name: str, attrs: dict[str, Any], arrays: dict[str, IntArray]) -> IntOp:
    """Rebuild an op from what :meth:`IntOp.attrs` and :meth:`IntOp.arrays` wrote.

    Raises:
        ArtifactError: unknown kind or missing fields.
    """
    cls = OP_TYPES.get(str(kind))
    if cls is None:
        raise ArtifactError(f"unknown integer op kind {kind!r}; known: {sorted(OP_TYPES)}")
    try:
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
        return cls(name=name, **converted, **arrays)
    except TypeError as exc:
        raise ArtifactError(f"op {name!r} of kind {kind!r} is malformed: {exc}") from exc
