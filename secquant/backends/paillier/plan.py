"""How an integer model splits into Paillier rounds.

Paillier adds ciphertexts and multiplies them by plaintext integers, nothing
more, so the server can evaluate exactly the affine ops (Linear, Conv2d,
SumPool2d, Flatten, AddConst).  A maximal run of them becomes one
:class:`AffineBlock`, flattened to one integer matrix ``y = W x + b`` (composing
integer affine maps is exact).  The element-wise non-linear ops (Square, Poly)
between blocks form :class:`ClientStep` s, which the client applies to the
decrypted pre-activations exactly as :mod:`secquant.quant.intops` does.

A model without non-linear ops is one block and one round.  Otherwise the
protocol is interactive: round ``r`` evaluates block ``r`` on the server, and
the client applies ``steps[r]`` before encrypting the input of round ``r + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError, ConfigError, UnsupportedLayerError
from secquant.quant import exact
from secquant.quant.intops import IntLinear, IntOp, max_abs, op_from_parts, op_to_parts
from secquant.quant.model import QuantizedModel

__all__ = ["AFFINE_KINDS", "CLIENT_KINDS", "AffineBlock", "ClientBlock", "ClientStep", "PaillierClientPlan",
           "PaillierPlan", "build_plan"]

#: Op kinds the server evaluates under Paillier.
AFFINE_KINDS = frozenset({"linear", "conv2d", "sumpool2d", "flatten", "add_const"})
#: Element-wise op kinds the client applies between rounds.
CLIENT_KINDS = frozenset({"square", "poly"})

IntArray = NDArray[Any]


@dataclass(frozen=True, eq=False)
class AffineBlock:
    """A run of affine ops as one integer map ``y = W x + b`` on flattened inputs.

    Attributes:
        names: Names of the ops folded into the block.
        weight: Integers of shape (out_features, in_features); int64 or Python ints.
        bias: Integers of shape (out_features,).
        in_shape: Shape of one input (no batch axis).
        in_bound: Proven bound on |input integer|.
        out_bound: Proven bound on |output integer| (from ``qm.bounds()``).
    """

    names: tuple[str, ...]
    weight: IntArray
    bias: IntArray
    in_shape: tuple[int, ...]
    in_bound: int
    out_bound: int

    @property
    def in_features(self) -> int:
        """Flattened input size."""
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        """Flattened output size."""
        return int(self.weight.shape[0])

    @property
    def partial_bound(self) -> int:
        """Bound on every partial sum of ``W x + b`` for ``|x| <= in_bound``."""
        w = np.asarray(self.weight, dtype=object)
        return int(np.max(np.abs(w).sum(axis=1))) * self.in_bound + max_abs(self.bias) if w.size else max_abs(self.bias)

    def apply(self, x: IntArray) -> IntArray:
        """Exact ``W x + b`` for integer inputs of shape (n, *in_shape); result (n, out_features)."""
        flat = np.asarray(x).reshape(len(x), -1)
        bound = self.partial_bound
        y = exact.matmul(exact.as_exact(flat, bound), self.weight, bound)
        return exact.as_exact(exact.as_exact(y, bound) + exact.as_exact(self.bias, bound), bound)


@dataclass(frozen=True, eq=False)
class ClientStep:
    """Element-wise ops the client applies to decrypted values.

    Attributes:
        ops: The ops, in order.
        bounds: The proven partial bound passed to each op's ``forward``.
        shape: Shape of one value entering the step.
    """

    ops: tuple[IntOp, ...]
    bounds: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the ops."""
        return tuple(op.name for op in self.ops)

    def apply(self, x: IntArray) -> IntArray:
        """Apply the ops to integers of shape (n, *shape) (or flattened (n, prod(shape)))."""
        out = np.asarray(x).reshape(len(x), *self.shape)
        for op, bound in zip(self.ops, self.bounds):
            out = op.forward(out, bound)
        return out


@dataclass(frozen=True, eq=False)
class PaillierPlan:
    """Rounds of a Paillier evaluation.

    Attributes:
        pre: Client ops applied to the input before the first encryption (or None).
        blocks: One affine block per round, evaluated by the server.
        steps: ``steps[r]`` is applied by the client to the output of round r
            (None when nothing follows); the last one ends the model.
        output_shape: Shape of one model output.
    """

    pre: ClientStep | None
    blocks: tuple[AffineBlock, ...]
    steps: tuple[ClientStep | None, ...]
    output_shape: tuple[int, ...]

    @property
    def rounds(self) -> int:
        """Server rounds."""
        return len(self.blocks)

    @property
    def is_linear(self) -> bool:
        """True when no client step exists (one round, nothing non-linear)."""
        return self.pre is None and all(s is None for s in self.steps) and self.rounds == 1

    def client_op_names(self) -> list[str]:
        """Names of every op the client applies."""
        names = list(self.pre.names) if self.pre else []
        for s in self.steps:
            if s is not None:
                names.extend(s.names)
        return names


@dataclass(frozen=True)
class ClientBlock:
    """What the client knows of an affine block: its edges and bound, never ``W`` or ``b``.

    Attributes:
        names: Names of the ops folded into the block.
        in_features: Flattened input size.
        out_features: Flattened output size.
        out_bound: Proven bound on |output integer|.
    """

    names: tuple[str, ...]
    in_features: int
    out_features: int
    out_bound: int

    def __post_init__(self) -> None:
        if not self.names or self.in_features < 1 or self.out_features < 1 or self.out_bound < 0:
            raise ConfigError(f"invalid Paillier client block {self!r}")


@dataclass(frozen=True, eq=False)
class PaillierClientPlan:
    """The client's view of a :class:`PaillierPlan`: block edges and client steps, no affine weights.

    The client steps (Square, Poly) carry their coefficients: in interactive
    mode the client applies them itself (see ``protocols/paillier-inference.md``).
    """

    pre: ClientStep | None
    blocks: tuple[ClientBlock, ...]
    steps: tuple[ClientStep | None, ...]
    output_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.blocks or len(self.steps) != len(self.blocks):
            raise ConfigError("a Paillier client plan needs one step slot per block")

    @property
    def rounds(self) -> int:
        """Server rounds."""
        return len(self.blocks)

    @classmethod
    def of(cls, plan: PaillierPlan) -> PaillierClientPlan:
        """The client view of ``plan``."""
        blocks = tuple(ClientBlock(b.names, b.in_features, b.out_features, int(b.out_bound)) for b in plan.blocks)
        return cls(plan.pre, blocks, plan.steps, tuple(plan.output_shape))

    def to_meta(self) -> tuple[dict[str, Any], dict[str, IntArray]]:
        """JSON-ready fields and the client steps' coefficient arrays, for a client spec."""
        arrays: dict[str, IntArray] = {}
        meta = {
            "pre": _step_meta(self.pre, "pre", arrays),
            "blocks": [{"names": list(b.names), "in_features": b.in_features, "out_features": b.out_features,
                        "out_bound": str(b.out_bound)} for b in self.blocks],
            "steps": [_step_meta(st, f"step{r}", arrays) for r, st in enumerate(self.steps)],
            "output_shape": list(self.output_shape),
        }
        return meta, arrays

    @classmethod
    def from_meta(cls, meta: dict[str, Any], arrays: dict[str, IntArray]) -> PaillierClientPlan:
        """Rebuild from :meth:`to_meta`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            blocks = tuple(ClientBlock(tuple(str(n) for n in b["names"]), int(b["in_features"]),
                                       int(b["out_features"]), int(str(b["out_bound"]))) for b in meta["blocks"])
            return cls(_step_from(meta["pre"], arrays), blocks, tuple(_step_from(st, arrays) for st in meta["steps"]),
                       tuple(int(v) for v in meta["output_shape"]))
        except (KeyError, TypeError, ValueError, ArtifactError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed Paillier client plan: {exc!r}") from exc


def _step_meta(step: ClientStep | None, prefix: str, arrays: dict[str, IntArray]) -> dict[str, Any] | None:
    """JSON of one client step; its ops' arrays (activation coefficients) go to ``arrays``."""
    if step is None:
        return None
    ops = [op_to_parts(op, f"{prefix}.op{i}", arrays) for i, op in enumerate(step.ops)]
    return {"ops": ops, "bounds": [str(b) for b in step.bounds], "shape": list(step.shape)}


def _step_from(data: dict[str, Any] | None, arrays: dict[str, IntArray]) -> ClientStep | None:
    """Rebuild a client step; only element-wise kinds are accepted."""
    if data is None:
        return None
    ops = []
    for op in data["ops"]:
        if op["kind"] not in CLIENT_KINDS:
            raise ConfigError(f"a Paillier client step may only hold {sorted(CLIENT_KINDS)}, got {op['kind']!r}")
        ops.append(op_from_parts(op["kind"], op["name"], op["attrs"], {k: arrays[v] for k, v in op["arrays"].items()}))
    bounds = tuple(int(str(b)) for b in data["bounds"])
    if len(bounds) != len(ops):
        raise ConfigError("a Paillier client step needs one bound per op")
    return ClientStep(tuple(ops), bounds, tuple(int(v) for v in data["shape"]))


def _shape_bound(shape: tuple[int, ...], value: int) -> IntArray:
    return np.full(shape, int(value), dtype=object)


def _affine_matrix(ops: list[IntOp], in_shape: tuple[int, ...]) -> tuple[IntArray, IntArray]:
    """(W, b) of a chain of affine ops, by evaluating it on 0 and on every unit vector."""
    if len(ops) == 1 and isinstance(ops[0], IntLinear) and len(in_shape) == 1:
        return np.asarray(ops[0].weight), np.asarray(ops[0].bias).reshape(-1)
    d = int(np.prod(in_shape))
    basis = np.zeros((d + 1, d), dtype=np.int64)
    basis[1:] = np.eye(d, dtype=np.int64)
    x: IntArray = basis.reshape(d + 1, *in_shape)
    m = _shape_bound(in_shape, 1)
    for op in ops:
        lo, hi = op.interval(-m, m)
        bound = max(max_abs(op.partial_bound(m)), max_abs(lo, hi), 1)
        m = np.maximum(np.abs(np.asarray(lo, dtype=object)), np.abs(np.asarray(hi, dtype=object)))
        x = op.forward(x, bound)
    out = np.asarray(x).reshape(d + 1, -1)
    top = max_abs(out)
    out = exact.as_exact(out, 2 * top + 1)
    bias = out[0]
    weight = (out[1:] - bias).T
    return np.ascontiguousarray(weight), np.asarray(bias)


def build_plan(qm: QuantizedModel) -> PaillierPlan:
    """Split ``qm`` into server blocks and client steps.

    Raises:
        UnsupportedLayerError: an op is neither affine nor element-wise (Square, Poly).
        ConfigError: the model has no affine op for the server to evaluate.
    """
    problems = [
        f"{op.name} ({op.kind}): Paillier evaluates only {sorted(AFFINE_KINDS)} on the server and "
        f"{sorted(CLIENT_KINDS)} on the client"
        for op in qm.ops
        if op.kind not in AFFINE_KINDS | CLIENT_KINDS
    ]
    if problems:
        raise UnsupportedLayerError(problems)
    bounds = qm.bounds()
    shape = tuple(qm.input_shape)
    in_bound = bounds.input.max_abs
    groups: list[tuple[bool, list[int]]] = []
    for i, op in enumerate(qm.ops):
        affine = op.kind in AFFINE_KINDS
        if groups and groups[-1][0] == affine:
            groups[-1][1].append(i)
        else:
            groups.append((affine, [i]))
    if not any(affine for affine, _ in groups):
        raise ConfigError("the model has no affine layer (Linear, Conv2d, ...) for a Paillier server to evaluate")
    pre: ClientStep | None = None
    blocks: list[AffineBlock] = []
    steps: list[ClientStep | None] = []
    for affine, idx in groups:
        ops = [qm.ops[i] for i in idx]
        if affine:
            weight, bias = _affine_matrix(ops, shape)
            out_bound = bounds.layers[idx[-1]].max_abs
            blocks.append(AffineBlock(tuple(op.name for op in ops), weight, bias, shape, in_bound, out_bound))
            steps.append(None)
            for op in ops:
                shape = op.output_shape(shape)
        else:
            step = ClientStep(tuple(ops), tuple(bounds.layers[i].partial_max_abs for i in idx), shape)
            if not blocks:
                pre = step
            else:
                steps[-1] = step
            for op in ops:
                shape = op.output_shape(shape)
        in_bound = bounds.layers[idx[-1]].max_abs
    return PaillierPlan(pre=pre, blocks=tuple(blocks), steps=tuple(steps), output_shape=tuple(qm.output_shape))
