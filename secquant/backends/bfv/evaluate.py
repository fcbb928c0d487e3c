"""Evaluate a BFV plan on SEAL ciphertexts, one CRT prime at a time (the server's work).

:class:`ServerProgram` compiles every stage once per prime (integer maps or
scalar groups in throughput mode, :mod:`~.throughput`; encoded diagonals or
gathered weights in latency mode, :mod:`~.latency`) and runs a batch through
them, switching to the scheduled modulus level after each stage.

Throughput memory: SEAL's memory pool keeps every allocation it ever made, so a
layer of ciphertexts loaded at once stays resident for the rest of the process.
A throughput batch therefore keeps its features as residues (numpy, freed when
dropped) between integer maps, and applies the per-feature steps (a map's
biases, squares, polynomials, level switches) one feature at a time, as each
is loaded for the next map or for the response: SEAL holds a few ciphertexts,
not a layer, and the batch holds one copy of its features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secquant.backends.bfv.kit import PrimeKit, square
from secquant.backends.bfv.latency import (
    GatherAffine,
    diag_affine,
    gather_affine,
    latency_affine,
    latency_gather,
    latency_poly,
)
from secquant.backends.bfv.params import BFVParameters
from secquant.backends.bfv.plan import Affine, Square, Stage, stage_name
from secquant.backends.bfv.throughput import (
    MapAffine,
    map_affine,
    poly_coefficients,
    poly_feature,
    scalar_affine,
    throughput_affine,
)
from secquant.backends.seal.ciphertext import CiphertextMeta, RowResidues, from_bytes, read_fresh_rows, to_bytes
from secquant.backends.seal.context import levels
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.primes import galois_elt
from secquant.backends.seal.rns import map_ciphertexts
from secquant.backends.seal.serialize import scratch
from secquant.errors import ConfigError

#: One feature's step of a throughput stage: (feature index, ciphertext) -> ciphertext.
FeatureOp = Callable[[int, Any], Any]

__all__ = ["ServerProgram", "galois_elements"]


class ServerProgram:
    """The plan compiled for one prime, ready to run on its ciphertexts.

    Args:
        kit: SEAL objects and keys for the prime.
        stages: The plan.
        params: The chosen parameters (mode, layout, modulus-switching schedule).
    """

    def __init__(self, kit: PrimeKit, stages: list[Stage], params: BFVParameters) -> None:
        self.kit = kit
        self.stages = stages
        self.params = params
        chain = levels(kit.context)
        self._parms = {len(lv.moduli): list(lv.parms_id) for lv in chain}
        self._moduli = {lv.parms_id: lv.moduli for lv in chain}
        self._top = chain[0]
        self._compiled = [self._compile(i, st) for i, st in enumerate(stages)]

    def _compile(self, index: int, st: Stage) -> Any:
        layout = self.params.layout
        if not isinstance(st, Affine):
            return poly_coefficients(st, self.kit.t) if layout is None and not isinstance(st, Square) else st
        if layout is None:
            return map_affine(st, self.kit.t) or scalar_affine(st, self.kit.t)
        gather = self.params.gather
        if index == 0 and gather is not None:
            return gather_affine(self.kit, st, gather)
        lay = layout.stages[index]
        if lay is None:  # pragma: no cover - layout built from the same stages
            raise ConfigError(f"no layout for stage {stage_name(st)}")
        return diag_affine(self.kit, st, lay)

    def _switch(self, xs: list[Any], stage: int) -> list[Any]:
        """Drop data primes down to the schedule's level after ``stage``."""
        pid = self._parms[self.params.levels[stage]]
        for x in xs:
            if list(x.parms_id()) != pid:
                self.kit.evaluator.mod_switch_to_inplace(x, pid)
        return xs

    @property
    def takes_residues(self) -> bool:
        """THROUGHPUT whose first stage is an integer map: inputs are parsed, not loaded into SEAL."""
        return bool(self._compiled) and isinstance(self._compiled[0], MapAffine)

    def residues(self, blob: bytes | memoryview) -> RowResidues:
        """Parse a fresh input ciphertext from the wire and check it as SEAL's ``load`` would.

        Raises:
            ConfigError: malformed, seeded, not fresh, or a residue not below its prime.
        """
        return read_fresh_rows(blob, self._top.parms_id, self._top.moduli, False, "a BFV input ciphertext")

    def _zero(self, meta: CiphertextMeta) -> Any:
        return self.kit.encrypt_zero()

    def _bias_op(self, bias: tuple[int, ...]) -> FeatureOp:
        def add_bias(k: int, ct: Any) -> Any:
            if bias[k]:
                self.kit.evaluator.add_plain_inplace(ct, self.kit.constant(bias[k]))
            return ct
        return add_bias

    def _switch_op(self, stage: int) -> FeatureOp:
        return lambda k, ct: self._switch([ct], stage)[0]

    def _feature_op(self, st: Stage, prog: Any) -> FeatureOp:
        if isinstance(st, Square):
            return lambda k, ct: square(self.kit, [ct])[0]
        return lambda k, ct: poly_feature(self.kit, prog[k], ct)

    def _stream(self, xs: list[Any], ops: list[FeatureOp], dump: bool) -> list[Any]:
        """Apply ``ops`` feature by feature, consuming ``xs``; each result stays a SEAL ciphertext,
        or (``dump``) becomes residues for the next integer map.  Residues in ``xs`` are loaded first."""
        if not ops and dump:
            return xs
        io, sa, ctx, out = scratch(), seal(), self.kit.context, []
        for k in range(len(xs)):
            x, xs[k] = xs[k], None
            ct = io.load(sa.Ciphertext(ctx), ctx, to_bytes(*x), "ciphertext") if isinstance(x, tuple) else x
            for op in ops:
                ct = op(k, ct)
            out.append(from_bytes(io.dump(ct)) if dump else ct)
            del x, ct
        return out

    def run_throughput(self, xs: list[Any]) -> list[Any]:
        """Features in (ciphertexts, or residues when :attr:`takes_residues`), features out.

        Integer maps read and write residues; every other step runs per feature in
        :meth:`_stream` (see the module docstring: memory).
        """
        pending: list[FeatureOp] = []
        for i, (st, prog) in enumerate(zip(self.stages, self._compiled)):
            if isinstance(prog, MapAffine):
                xs = map_ciphertexts(prog.imap, self._stream(xs, pending, dump=True), self.kit.context,
                                     self._moduli, self._zero, consume=True, load=False)
                pending = [self._bias_op(prog.bias)]
            elif isinstance(st, Affine):
                xs = throughput_affine(self.kit, prog, self._stream(xs, pending, dump=False))
                pending = []
            else:
                pending.append(self._feature_op(st, prog))
            pending.append(self._switch_op(i))
        return self._stream(xs, pending, dump=False)

    def run_latency(self, cts: list[Any]) -> Any:
        """The ciphertexts of one packed input (or of two, one per row, without gathering) in, one out."""
        period = self.params.layout.period if self.params.layout else 0
        x = cts[0]
        for i, (st, prog) in enumerate(zip(self.stages, self._compiled)):
            target = self._parms[self.params.levels[i]]
            if isinstance(prog, GatherAffine):
                x = latency_gather(self.kit, prog, cts, target)
            elif isinstance(st, Affine):
                x = latency_affine(self.kit, prog, x, target)
            elif isinstance(st, Square):
                x = square(self.kit, [x])[0]
            else:
                x = latency_poly(self.kit, st, period, x)
            x = self._switch([x], i)[0]
        return x


def galois_elements(params: BFVParameters) -> list[int]:
    """Galois elements of the rotations the latency layout uses (row steps, and the row swap)."""
    if params.layout is None:
        return []
    n = params.poly_degree
    elts = [galois_elt(s, n) for s in params.layout.all_steps(n)]
    if params.layout.gather_cols is not None:
        elts.append(2 * n - 1)  # rotate_columns: swap the two rows
    return elts
