"""The CKKS circuit on SEAL ciphertexts (through ``tenseal.sealapi``).

:class:`Evaluator` holds the encoded weights of every stage, prepared once per
server, and maps the input ciphertexts of one batch to the output ciphertexts.
Scales are SEAL's true scales: weights are encoded at ``q·Δ_out/Δ_in`` so each
rescale lands exactly on the planned Δ_out, and biases are encoded at the
ciphertext's own scale.  A POLY stage builds its powers by ciphertext products
(each relinearized and rescaled), mod-switches them to the deepest level,
multiplies x**i by A_i encoded at ``q·Δ_out/S_i``, sums the terms (whose scales
agree to a few ulps and are set equal, which the error bound charges), rescales
once and adds A_0 at the ciphertext's own scale.

In THROUGHPUT mode an affine stage with integer weights at scale 1 is one
exact integer matrix product on the ciphertexts' residues
(:class:`~.rns.IntegerMap`), bit for bit what ``multiply_plain`` and ``add``
give, at a fraction of their cost; inputs may arrive as residues parsed from
the wire, so the first stage never builds SEAL objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Mode
from secquant.backends.ckks.evaluate_latency import LatencyStages
from secquant.backends.ckks.noise import POLY_SCALE_REL
from secquant.backends.ckks.pairs import pair_matrix, real_part, slot_signs
from secquant.backends.ckks.plan import CKKSPlan, StagePlan
from secquant.backends.ckks.stages import StageKind
from secquant.backends.seal.ciphertext import (
    CiphertextMeta,
    RowResidues,
    read_fresh_rows,
    to_bytes,
)
from secquant.backends.seal.context import SealScheme, levels, make_context, sealapi
from secquant.backends.seal.layout import tile
from secquant.backends.seal.rns import IntegerMap, map_ciphertexts
from secquant.backends.seal.serialize import load_seal
from secquant.errors import ConfigError, ParameterError

__all__ = ["PLAIN_CACHE_BYTES", "Evaluator", "seal_context"]

#: Keep a stage's encoded weights (THROUGHPUT: one plaintext per distinct weight; LATENCY: one per diagonal)
#: when they fit in this many bytes, else encode each when it is used (folded requantize factors make nearly
#: every weight distinct; a large convolution has thousands of diagonals).
PLAIN_CACHE_BYTES = 512 * 2**20


def seal_context(plan: Any) -> Any:
    """SEALContext of a plan (or client plan) at its security level.

    Raises:
        ParameterError: SEAL refuses the parameters.
    """
    return make_context(SealScheme.CKKS, plan.poly_degree, plan.primes, plan.options.security)


def _tile(values: NDArray[np.float64], period: int, slots: int) -> list[float]:
    return tile(np.asarray(values, dtype=np.float64), period, slots).tolist()


class Evaluator(LatencyStages):
    """Evaluates a plan on ciphertexts; holds only public material."""

    def __init__(self, plan: CKKSPlan, context: Any, relin_keys: Any, galois_keys: Any | None,
                 public_key: Any | None) -> None:
        sa = sealapi()
        self._sa = sa
        self.plan = plan
        self.ctx = context
        self.ev = sa.Evaluator(context)
        self.encoder = sa.CKKSEncoder(context)
        self.relin = relin_keys
        self.galois = galois_keys
        self.public_key = public_key
        chain = levels(context)
        self.parms: list[list[int]] = [list(lv.parms_id) for lv in chain]
        self._moduli = {lv.parms_id: lv.moduli for lv in chain}
        self._monomial: Any | None = None  # X**(N/2) at the top level, for paired inputs
        self._prepared: list[Any] = [self._prepare(i, sp) for i, sp in enumerate(plan.stages)]

    # -- preparation ---------------------------------------------------------
    def _parms_at(self, n_primes: int) -> Any:
        return self.parms[len(self.plan.primes) - 1 - n_primes]

    def _plain(self, values: list[float] | float, parms_id: Any, scale: float) -> Any:
        pt = self._sa.Plaintext()
        self.encoder.encode(values, parms_id, scale, pt)
        return pt

    def _prepare_poly(self, sp: StagePlan) -> Any:
        """LATENCY: one tiled plaintext per power; THROUGHPUT: per feature j, one scalar plaintext per power."""
        pp, coeffs = sp.poly, sp.stage.coeffs
        if pp is None or coeffs is None:
            raise ParameterError("internal: POLY stage without its plan")
        pid = self._parms_at(pp.coeff_primes)
        if self.plan.options.mode is Mode.LATENCY:
            return {i: self._plain(_tile(np.array([float(v) for v in coeffs[i]]), pp.period, self.plan.slots),
                                   pid, pp.plain_scales[i]) for i in pp.terms}
        cache: dict[tuple[int, float], Any] = {}
        per_feature = []
        for j in range(sp.stage.n_in):
            pts = {}
            for i in pp.terms:
                v = float(coeffs[i][j])
                if v:
                    if (i, v) not in cache:
                        cache[(i, v)] = self._plain(v, pid, pp.plain_scales[i])
                    pts[i] = cache[(i, v)]
            per_feature.append(pts)
        return per_feature

    def _prepare(self, index: int, sp: StagePlan) -> Any:
        st = sp.stage
        if st.kind is StageKind.POLY:
            return self._prepare_poly(sp)
        if not st.weighted or st.matrix is None:
            return None
        pid = self._parms_at(len(sp.level_primes))
        if sp.gather is not None:
            vectors = {key: v for key, v in sp.gather.plaintext_vectors(st.matrix).items() if np.any(v)}
            if len(vectors) * self.plan.poly_degree * len(sp.level_primes) * 8 > PLAIN_CACHE_BYTES:
                return vectors  # encoded when used, as a large convolution's diagonals are below
            return {key: self._plain(v.tolist(), pid, sp.plain_scale) for key, v in vectors.items()}
        if self.plan.options.mode is Mode.LATENCY:
            lay = sp.layout
            if lay is None:
                raise ParameterError(f"stage {index} has no layout (internal planning error)")
            diagonals = lay.prerotated(st.matrix)
            if len(diagonals) * self.plan.poly_degree * len(sp.level_primes) * 8 > PLAIN_CACHE_BYTES:
                return diagonals  # encoded when used (a large convolution's diagonals fill gigabytes)
            return {kb: self._plain(tile(d, lay.period, self.plan.slots).tolist(), pid, sp.plain_scale)
                    for kb, d in diagonals.items()}
        if sp.prime == 0 and sp.plain_scale == 1.0:
            weights = np.rint(st.matrix).astype(np.int64)
            return IntegerMap(pair_matrix(weights) if index == 0 and self.plan.paired_inputs else weights)
        cache: dict[float, Any] = {}
        distinct = len(np.unique(st.matrix[st.matrix != 0]))
        lazy = distinct * self.plan.poly_degree * len(sp.level_primes) * 8 > PLAIN_CACHE_BYTES
        rows = []
        for i in range(st.n_out):
            terms = []
            for j in np.flatnonzero(st.matrix[i]):
                v = float(st.matrix[i, j])
                if lazy:  # e.g. requantize factors folded in: nearly every weight differs; encode when used
                    terms.append((int(j), v))
                    continue
                if v not in cache:
                    cache[v] = self._plain(v, pid, sp.plain_scale)
                terms.append((int(j), cache[v]))
            rows.append(terms)
        return rows

    # -- evaluation ----------------------------------------------------------
    def _new(self) -> Any:
        return self._sa.Ciphertext(self.ctx)

    def _zero_like(self, ct: Any) -> Any:
        return self._zero_at(ct.parms_id(), ct.scale)

    def _zero_at(self, parms_id: Any, scale: float) -> Any:
        if self.public_key is None:
            raise ParameterError("an all-zero weight row needs the public key to make an encryption of zero")
        out = self._new()
        self._sa.Encryptor(self.ctx, self.public_key).encrypt_zero(parms_id, out)
        out.scale = scale
        return out

    # -- residues ------------------------------------------------------------
    @property
    def takes_residues(self) -> bool:
        """THROUGHPUT whose first stage is an integer map: inputs are parsed, not loaded into SEAL."""
        return bool(self._prepared) and isinstance(self._prepared[0], IntegerMap)

    def residues(self, blob: bytes | memoryview, n_primes: int, scale: float) -> RowResidues:
        """Parse a fresh input ciphertext from the wire and check it as SEAL's ``load`` would.

        Raises:
            ConfigError: malformed, seeded, at another level or scale, or a residue not below its prime.
        """
        meta, data = read_fresh_rows(blob, self._parms_at(n_primes), self.plan.primes[:n_primes], True,
                                     "a CKKS input ciphertext")
        if not np.isclose(meta.scale, scale, rtol=1e-12, atol=0):
            raise ConfigError(f"a CKKS input ciphertext has scale {meta.scale}, the plan needs {scale}")
        return meta, data

    def _zero_meta(self, meta: CiphertextMeta) -> Any:
        return self._zero_at(list(meta.parms_id), meta.scale)

    def _loaded(self, x: Any) -> Any:
        """A ciphertext from :func:`~.rns.map_ciphertexts` with ``load=False``: loaded if residues."""
        if isinstance(x, tuple):
            return load_seal([to_bytes(*x)], self._new, self.ctx, "CKKS ciphertext")[0]
        return x

    def _paired_map(self, xs: list[Any], imap: IntegerMap) -> list[Any]:
        """The paired first stage (:mod:`~.pairs`): ``U`` and ``V`` from one map, then per output the real
        part of ``U + X**(N/2)·V``; two outputs in SEAL at a time (its pool never shrinks)."""
        if self._monomial is None:
            sigma = slot_signs(self.plan.slots).tolist()
            self._monomial = self._plain(sigma, self._parms_at(len(self.plan.primes) - 1), 1.0)
        halves = map_ciphertexts(imap, xs, self.ctx, self._moduli, self._zero_meta, load=False)
        m, tmp, out = len(halves) // 2, self._new(), []
        for i in range(m):
            u, v = self._loaded(halves[i]), self._loaded(halves[m + i])
            halves[i] = halves[m + i] = None
            self.ev.multiply_plain(v, self._monomial, tmp)
            self.ev.add_inplace(u, tmp)
            real_part(self.ev, u, self.galois, self.plan.input_scale)
            out.append(u)
        return out

    def _integer_map(self, xs: list[Any], sp: StagePlan, imap: IntegerMap, pairs: bool = False) -> list[Any]:
        """``imap`` on the residues (``pairs``: the paired first stage, :meth:`_paired_map`), then the biases."""
        outs = self._paired_map(xs, imap) if pairs else map_ciphertexts(imap, xs, self.ctx, self._moduli,
                                                                         self._zero_meta)
        bias = sp.stage.bias_float()
        for ct, b in zip(outs, bias):
            if b:
                self.ev.add_plain_inplace(ct, self._plain(float(b), ct.parms_id(), ct.scale))
        return outs

    def _add_bias(self, ct: Any, bias: NDArray[np.float64], period: int | None) -> None:
        if not np.any(bias):
            return
        if period is None:
            raise ParameterError("internal: per-ciphertext bias needs the throughput path")
        pt = self._plain(_tile(bias, period, self.plan.slots), ct.parms_id(), ct.scale)
        self.ev.add_plain_inplace(ct, pt)

    def _shift_for_square(self, ct: Any, sp: StagePlan, period: int | None, feature: int = 0) -> None:
        """Add a completed square's shift (:mod:`~.square`) at the ciphertext's scale: tiled (LATENCY) or one
        feature's scalar (THROUGHPUT, ``period`` None)."""
        shift = sp.stage.square_shift
        if shift is None:
            return
        if period is None:
            if shift[feature]:
                self.ev.add_plain_inplace(ct, self._plain(float(shift[feature]), ct.parms_id(), ct.scale))
            return
        self._add_bias(ct, np.asarray(shift, dtype=np.float64), period)

    def _square(self, ct: Any) -> None:
        self.ev.square_inplace(ct)
        self.ev.relinearize_inplace(ct, self.relin)
        self.ev.rescale_to_next_inplace(ct)

    def _poly(self, x: Any, sp: StagePlan, pts: dict[int, Any], a0: NDArray[np.float64] | float) -> Any:
        """``sum_i A_i x**i`` of one ciphertext: ``pts[i]`` encodes A_i, ``a0`` is A_0 (tiled vector or scalar)."""
        pp = sp.poly
        if pp is None:
            raise ParameterError("internal: POLY stage without its plan")
        ev = self.ev
        powers = {1: x}
        for i, a, b, n_primes, _q, _scale in pp.products:
            pid = self._parms_at(n_primes)
            xa, xb = self._new(), self._new()
            ev.mod_switch_to(powers[a], pid, xa)
            if a == b:
                ev.square_inplace(xa)
            else:
                ev.mod_switch_to(powers[b], pid, xb)
                ev.multiply_inplace(xa, xb)
            ev.relinearize_inplace(xa, self.relin)
            ev.rescale_to_next_inplace(xa)
            powers[i] = xa
        pid = self._parms_at(pp.coeff_primes)
        acc, tmp, low = None, self._new(), self._new()
        for i, pt in pts.items():
            ev.mod_switch_to(powers[i], pid, low)
            ev.multiply_plain(low, pt, tmp)
            if abs(tmp.scale / pp.term_scale - 1.0) > POLY_SCALE_REL:
                raise ParameterError(f"internal: a POLY term has scale {tmp.scale}, the plan needs {pp.term_scale}")
            tmp.scale = pp.term_scale  # equal within a few ulps; the error bound charges POLY_SCALE_REL
            if acc is None:
                acc, tmp = tmp, self._new()
            else:
                ev.add_inplace(acc, tmp)
        if acc is None:  # every coefficient of x**i (i >= 1) is zero for this ciphertext
            ev.mod_switch_to(x, pid, low)
            acc = self._zero_like(low)
            acc.scale = pp.term_scale
        ev.rescale_to_next_inplace(acc)
        if np.any(a0):
            values = a0.tolist() if isinstance(a0, np.ndarray) else float(a0)
            ev.add_plain_inplace(acc, self._plain(values, acc.parms_id(), acc.scale))
        return acc

    def _affine_throughput(self, xs: list[Any], sp: StagePlan, rows: list[list[tuple[int, Any]]]) -> list[Any]:
        ev = self.ev
        bias = sp.stage.bias_float()
        out = []
        tmp = self._new()  # one buffer for every product: SEAL reuses its allocation
        pid = self._parms_at(len(sp.level_primes))
        for i, terms in enumerate(rows):
            acc = self._sum_products(((xs[j], self._plain(pt, pid, sp.plain_scale) if isinstance(pt, float) else pt)
                                      for j, pt in terms), tmp)
            if acc is None:
                acc = self._zero_like(xs[0])
                acc.scale = xs[0].scale * sp.plain_scale
            if sp.prime:  # else: integer weights at scale 1, nothing to rescale
                ev.rescale_to_next_inplace(acc)
            if bias[i]:
                ev.add_plain_inplace(acc, self._plain(float(bias[i]), acc.parms_id(), acc.scale))
            out.append(acc)
        return out

    def run_latency(self, xs: list[Any]) -> Any:
        """Evaluate one input (its replicated ciphertext and any client-made rotations of it)."""
        period = self.plan.input_period
        x = xs[0]
        for k, (sp, prep) in enumerate(zip(self.plan.stages, self._prepared)):
            kind = sp.stage.kind
            if sp.stage.weighted and sp.gather is not None:
                x = self._affine_gather(xs, sp, prep)
                period = sp.gather.period
            elif sp.stage.weighted:
                x = self._affine_latency(xs if k == 0 else [x], sp, prep)
                period = sp.layout.width if sp.layout is not None else period
            elif kind is StageKind.SQUARE:
                self._shift_for_square(x, sp, period)
                self._square(x)
            elif kind is StageKind.POLY:
                x = self._poly(x, sp, prep, np.array(_tile(sp.stage.bias_float(), period, self.plan.slots)))
            else:
                self._add_bias(x, sp.stage.bias_float(), period)
        return x

    def run_throughput(self, xs: list[Any]) -> list[Any]:
        """Evaluate one ciphertext (or its :data:`RowResidues`) per feature; returns one ciphertext per output.

        With paired inputs (:mod:`~.pairs`), ``xs`` holds one ciphertext per pair of features.
        """
        for k, (sp, prep) in enumerate(zip(self.plan.stages, self._prepared)):
            kind = sp.stage.kind
            if isinstance(prep, IntegerMap):
                xs = self._integer_map(xs, sp, prep, k == 0 and self.plan.paired_inputs)
                continue
            if xs and isinstance(xs[0], tuple):
                xs = load_seal([to_bytes(m, d) for m, d in xs], self._new, self.ctx, "CKKS ciphertext")
            if sp.stage.weighted:
                xs = self._affine_throughput(xs, sp, prep)
            elif kind is StageKind.SQUARE:
                for j, ct in enumerate(xs):
                    self._shift_for_square(ct, sp, None, j)
                    self._square(ct)
            elif kind is StageKind.POLY:
                a0 = sp.stage.bias_float()
                xs = [self._poly(ct, sp, pts, float(a0[j])) for j, (ct, pts) in enumerate(zip(xs, prep))]
            else:
                bias = sp.stage.bias_float()
                for ct, b in zip(xs, bias):
                    if b:
                        self.ev.add_plain_inplace(ct, self._plain(float(b), ct.parms_id(), ct.scale))
        return xs
