"""Evaluate a BFV plan on SEAL ciphertexts, one CRT prime at a time (the server's work).

:class:`ServerProgram` compiles every stage once per prime (integer maps or
scalar groups in throughput mode, :mod:`~.throughput`; encoded diagonals or
gathered weights in latency mode, :mod:`~.latency`) and runs a batch through
them, switching to the scheduled modulus level after each stage.
"""

from __future__ import annotations

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
    scalar_affine,
    throughput_affine,
    throughput_poly,
)
from secquant.backends.seal.ciphertext import CiphertextMeta, RowResidues, read_fresh_rows
from secquant.backends.seal.context import levels
from secquant.backends.seal.primes import galois_elt
from secquant.backends.seal.rns import map_ciphertexts
from secquant.errors import ConfigError

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
        if not isinstance(st, Affine):
            return st
        layout = self.params.layout
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

    def _integer_map(self, prog: MapAffine, xs: list[Any]) -> list[Any]:
        out = map_ciphertexts(prog.imap, xs, self.kit.context, self._moduli, self._zero, consume=True)
        for ct, bias in zip(out, prog.bias):
            if bias:
                self.kit.evaluator.add_plain_inplace(ct, self.kit.constant(bias))
        return out

    def run_throughput(self, xs: list[Any]) -> list[Any]:
        """Features in (ciphertexts, or residues when :attr:`takes_residues`), features out."""
        for i, (st, prog) in enumerate(zip(self.stages, self._compiled)):
            if isinstance(prog, MapAffine):
                xs = self._integer_map(prog, xs)
            elif isinstance(st, Affine):
                xs = throughput_affine(self.kit, prog, xs)
            elif isinstance(st, Square):
                xs = square(self.kit, xs)
            else:
                xs = throughput_poly(self.kit, st, xs)
            xs = self._switch(xs, i)
        return xs

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
