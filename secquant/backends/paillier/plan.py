"""How an integer model splits into Paillier rounds, on the shared lowering.

Paillier adds ciphertexts and multiplies them by plaintext integers, nothing
more, so the server evaluates exactly the :class:`~secquant.quant.lowering.Affine`
stages of :func:`~secquant.quant.lowering.lower` (a maximal run of Linear,
Conv2d, SumPool2d, Flatten and AddConst, composed into one integer map
``y = W x + b``): each is one :class:`AffineBlock`, one round.  The element-wise
stages between blocks (Square, Poly, Requantize) form :class:`ClientStep` s,
which the client applies to the decrypted pre-activations exactly as
:mod:`secquant.quant.intops` does: a requantized model is rescaled on the
client, bit for bit as ``forward_int`` rescales it.  A graph model arrives as
the chain the lowering lays it out as (skip paths carried through the client
steps as pass-through features).

A model without non-linear ops is one block and one round.  Otherwise the
protocol is interactive: round ``r`` evaluates block ``r`` on the server, and
the client applies ``steps[r]`` before encrypting the input of round ``r + 1``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError, ConfigError
from secquant.quant.intops import (
    OP_TYPES,
    IntOp,
    IntPoly,
    IntRequantize,
    IntSquare,
    op_from_parts,
    op_to_parts,
)
from secquant.quant.lowering import Affine, lower
from secquant.quant.model import QuantizedModel

__all__ = ["CLIENT_OPS", "AffineBlock", "ClientBlock", "ClientStep", "PaillierClientPlan", "PaillierPlan",
           "build_plan"]

#: Element-wise op types the client applies between rounds (requantize: exactly, on decrypted integers).
CLIENT_OPS: tuple[type[IntOp], ...] = (IntSquare, IntPoly, IntRequantize)

IntArray = NDArray[Any]


@dataclass(frozen=True, eq=False)
class AffineBlock:
    """One server round: an :class:`~secquant.quant.lowering.Affine` stage with Paillier's scalar bounds.

    Attributes:
        stage: The affine stage (exact ``W``, ``b`` and per-feature bounds).
    """

    stage: Affine

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the ops folded into the block."""
        return self.stage.names

    @property
    def weight(self) -> IntArray:
        """Integers of shape (out_features, in_features); int64 or Python ints."""
        return self.stage.matrix

    @property
    def bias(self) -> IntArray:
        """Integers of shape (out_features,)."""
        return self.stage.bias

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input (no batch axis)."""
        return self.stage.in_shape

    @property
    def in_features(self) -> int:
        """Flattened input size."""
        return self.stage.d_in

    @property
    def out_features(self) -> int:
        """Flattened output size."""
        return self.stage.d_out

    @property
    def in_bound(self) -> int:
        """Proven bound on |input integer| (from ``qm.bounds()``)."""
        return self.stage.in_max

    @property
    def out_bound(self) -> int:
        """Proven bound on |output integer| (from ``qm.bounds()``): what the slots must hold."""
        return self.stage.out_max

    def apply(self, x: IntArray) -> IntArray:
        """Exact ``W x + b`` for integer inputs of shape (n, *in_shape); result (n, out_features)."""
        return self.stage.apply(x).reshape(len(x), -1)


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

    The client steps (Square, Poly, Requantize) carry their coefficients and
    fixed-point multipliers (M, s, clip limit): in interactive
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
        if OP_TYPES.get(str(op["kind"])) not in CLIENT_OPS:
            allowed = sorted(str(cls.kind) for cls in CLIENT_OPS)
            raise ConfigError(f"a Paillier client step may only hold {allowed}, got {op['kind']!r}")
        ops.append(op_from_parts(op["kind"], op["name"], op["attrs"], {k: arrays[v] for k, v in op["arrays"].items()}))
    bounds = tuple(int(str(b)) for b in data["bounds"])
    if len(bounds) != len(ops):
        raise ConfigError("a Paillier client step needs one bound per op")
    return ClientStep(tuple(ops), bounds, tuple(int(v) for v in data["shape"]))


def _chain_ops(qm: QuantizedModel) -> dict[str, IntOp]:
    """The ops the lowering's stages are named after: ``qm``'s own, or those of its linearized chain (a DAG)."""
    from secquant.quant.linearize import linearize

    chain = qm if qm.is_chain else linearize(qm)
    return {op.name: op for op in chain.ops}


def build_plan(qm: QuantizedModel) -> PaillierPlan:
    """Split ``qm`` into server blocks (its affine stages) and client steps (the element-wise ones).

    A graph model (residual adds, concatenations) is split as the chain the
    lowering lays it out as.  Requantize ops are client steps: the client
    rescales the decrypted values exactly as ``forward_int`` does.

    Raises:
        UnsupportedLayerError: an op is neither affine nor element-wise (Square, Poly, Requantize).
        ConfigError: the model has no affine op for the server to evaluate.
    """
    stages = lower(qm)
    if not any(isinstance(st, Affine) for st in stages):
        raise ConfigError("the model has no affine layer (Linear, Conv2d, ...) for a Paillier server to evaluate")
    by_name = _chain_ops(qm)
    pre: ClientStep | None = None
    blocks: list[AffineBlock] = []
    steps: list[ClientStep | None] = []
    for affine, group in itertools.groupby(stages, key=lambda st: isinstance(st, Affine)):
        run = list(group)
        taken = tuple(by_name[name] for st in run for name in st.names)  # the ops each stage was lowered from
        if affine:
            blocks.extend(AffineBlock(st) for st in run if isinstance(st, Affine))
            steps.extend(None for _ in run)
            continue
        step = ClientStep(taken, tuple(st.partial_max for st in run), run[0].in_shape)
        if blocks:
            steps[-1] = step
        else:
            pre = step
    return PaillierPlan(pre=pre, blocks=tuple(blocks), steps=tuple(steps), output_shape=tuple(qm.output_shape))
