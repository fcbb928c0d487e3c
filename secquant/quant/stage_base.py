"""The stage types of the shared lowering (:mod:`secquant.quant.lowering`): kinds, the common base, :class:`Affine`.

Element-wise stages (square, polynomial, requantize) live in
:mod:`secquant.quant.stage_elementwise`; read the lowering's docstring for the API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant import exact
from secquant.quant.intops import max_abs

__all__ = ["Affine", "IntArray", "Shape", "StageBase", "StageKind", "bound_vector", "compact", "flat_batch", "mod_int64"]

IntArray = NDArray[Any]
Shape = tuple[int, ...]


class StageKind(enum.Enum):
    """What a stage computes."""

    AFFINE = "affine"  #: y = A x + b on flattened features
    SQUARE = "square"  #: y = x * x element-wise
    POLY = "poly"  #: y = sum_i c[i] x**i element-wise
    REQUANTIZE = "requantize"  #: y = clip(floor((x·M + 2**(s-1)) / 2**s), ±L) element-wise (fixed-point rescale)


def compact(a: Any) -> IntArray:
    """Exact integers as int64 when every entry fits, else as Python ints (object)."""
    arr = np.asarray(a)
    return exact.as_exact(arr, max_abs(arr) + 1)


def bound_vector(values: Any, size: int, what: str) -> IntArray:
    """A flat object array of ``size`` non-negative Python ints."""
    vec = exact.to_python_ints(np.asarray(values)).reshape(-1)
    if vec.size != size:
        raise ConfigError(f"{what} has {vec.size} entries, expected {size}")
    if size and int(np.min(vec)) < 0:
        raise ConfigError(f"{what} must be non-negative")
    return vec


def flat_batch(x: Any, features: int) -> IntArray:
    """``x`` as (n, features) integers.

    Raises:
        ConfigError: ``x`` is not integer, or not a batch of ``features`` values each.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuO":
        raise ConfigError(f"stages take integer arrays, got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.size != len(arr) * features:
        raise ConfigError(f"a stage takes (n, {features}) values, got shape {arr.shape}")
    return arr.reshape(len(arr), features)


def mod_int64(a: IntArray, t: int) -> NDArray[np.int64]:
    """``a mod t`` as int64 in [0, t)."""
    if t < 2 or t >= exact.INT64_EXACT:
        raise ConfigError(f"a modulus must lie in [2, 2**63), got {t}")
    return np.mod(exact.to_python_ints(a), t).astype(np.int64)


@dataclass(frozen=True, eq=False)
class StageBase:
    """Fields every stage has (see the module docstring)."""

    names: tuple[str, ...]
    in_shape: Shape
    out_shape: Shape
    in_bound: IntArray = field(repr=False)
    out_bound: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("a stage evaluates at least one op")
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "out_shape", tuple(int(v) for v in self.out_shape))
        object.__setattr__(self, "in_bound", bound_vector(self.in_bound, self.in_features, "in_bound"))
        object.__setattr__(self, "out_bound", bound_vector(self.out_bound, self.out_features, "out_bound"))

    @property
    def in_features(self) -> int:
        """Flattened input size."""
        return int(np.prod(self.in_shape, dtype=np.int64))

    @property
    def out_features(self) -> int:
        """Flattened output size."""
        return int(np.prod(self.out_shape, dtype=np.int64))

    @property
    def in_max(self) -> int:
        """Worst-case |input integer|."""
        return max_abs(self.in_bound)

    @property
    def out_max(self) -> int:
        """Worst-case |output integer|."""
        return max_abs(self.out_bound)

    @cached_property
    def partial_bound(self) -> IntArray:
        """Per output feature: bound on every partial sum, term or product, for inputs within ``in_bound``."""
        return self.propagate(self.in_bound)

    @property
    def partial_max(self) -> int:
        """Largest entry of :attr:`partial_bound` (at least :attr:`out_max`)."""
        return max(max_abs(self.partial_bound), self.out_max)

    def propagate(self, m: Any) -> IntArray:
        """Per output feature: bound on every value the stage forms when ``|x_j| <= m[j]``."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Affine(StageBase):
    """``y = A x + b`` on flattened features, the composition of consecutive affine ops.

    Attributes:
        matrix: Exact integers, shape (d_out, d_in); int64 when every entry fits, else object.
        bias: Exact integers, shape (d_out,).
        support: bool, shape (d_out, d_in): the entries the layers' geometry lets be nonzero,
            whatever the weights (:mod:`secquant.quant.support`), always including ``matrix != 0``.
            Layouts the client sees are built on it; None on construction means ``matrix != 0``.
    """

    matrix: IntArray = field(repr=False)
    bias: IntArray = field(repr=False)
    support: NDArray[np.bool_] = field(default=None, repr=False)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "matrix", compact(self.matrix))
        object.__setattr__(self, "bias", compact(self.bias).reshape(-1))
        if self.matrix.shape != (self.out_features, self.in_features) or self.bias.shape != (self.out_features,):
            raise ConfigError(f"affine stage {self.names}: matrix {self.matrix.shape} and bias {self.bias.shape} "
                              f"do not map {self.in_shape} to {self.out_shape}")
        nonzero = np.asarray(self.matrix != 0, dtype=bool)
        if self.support is not None and np.shape(self.support) != nonzero.shape:
            raise ConfigError(f"affine stage {self.names}: support {np.shape(self.support)} does not match its "
                              f"matrix {nonzero.shape}")
        object.__setattr__(self, "support", nonzero if self.support is None
                           else nonzero | np.asarray(self.support, dtype=bool))

    kind: ClassVar[StageKind] = StageKind.AFFINE  #: :attr:`StageKind.AFFINE`

    @property
    def d_in(self) -> int:
        """Input features."""
        return self.in_features

    @property
    def d_out(self) -> int:
        """Output features."""
        return self.out_features

    @cached_property
    def row_l1(self) -> int:
        """Largest row sum of |A| (how much the stage amplifies its inputs)."""
        return int(np.max(np.abs(exact.to_python_ints(self.matrix)).sum(axis=1))) if self.matrix.size else 0

    @cached_property
    def is_shift(self) -> bool:
        """Whether A is the identity: the stage only adds ``b``."""
        return self.d_in == self.d_out and bool(np.array_equal(self.matrix, np.eye(self.d_in, dtype=np.int64)))

    @property
    def is_reshape(self) -> bool:
        """Whether the stage changes no value (identity matrix, zero bias): a flatten alone."""
        return self.is_shift and not np.any(self.bias)

    def propagate(self, m: Any) -> IntArray:
        """``|A| m + |b|`` per output feature: bounds every partial sum of a row, in any order."""
        mv = bound_vector(m, self.d_in, "m")
        bound = self.row_l1 * max_abs(mv) + 1
        weighted = exact.matmul(mv[None], np.abs(exact.to_python_ints(self.matrix)), bound)[0]
        return exact.to_python_ints(weighted) + np.abs(exact.to_python_ints(self.bias))

    def apply(self, x: Any) -> IntArray:
        """Exact ``A x + b`` for integers of shape (n, *in_shape); result (n, *out_shape)."""
        flat = flat_batch(x, self.d_in)
        bound = self.row_l1 * max_abs(flat) + max_abs(self.bias)
        y = exact.matmul(exact.as_exact(flat, bound), self.matrix, bound)
        out = exact.as_exact(exact.as_exact(y, bound) + exact.as_exact(self.bias, bound), bound)
        return out.reshape(len(flat), *self.out_shape)

    def reduced(self, t: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(A mod t, b mod t)`` as int64 in [0, t).

        Raises:
            ConfigError: ``t`` is not in [2, 2**63).
        """
        return mod_int64(self.matrix, t), mod_int64(self.bias, t)
