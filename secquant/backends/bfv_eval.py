"""Evaluate a BFV plan on SEAL ciphertexts, one CRT prime at a time.

Two layouts (see :class:`secquant.backends.base.Mode`):

* **Throughput** (CryptoNets): one ciphertext per feature, input ``s`` in slot
  ``s``.  An affine map is one exact integer matrix product on the
  ciphertexts' residues (:class:`~.rns.IntegerMap`, weights centered mod t),
  bit for bit what constant ``multiply_plain`` and ``add`` give; inputs are
  read straight from the wire (:mod:`~.seal_bytes`).  Weights too large for
  exact float64 products fall back to scalar multiply-accumulates: per output,
  the inputs grouped by |weight|, summed, and each group multiplied once by a
  constant plaintext.  No rotations.
* **Latency**: one input per row of N/2 slots, repeated with the plan's period
  M (a power of two), so rotating a row by i rotates every copy cyclically.
  ``y = A x`` is the generalized-diagonal product ``sum_i diag_i * rot(x, i)``
  evaluated baby-step giant-step: rotations ``rot(x, b)`` for b < g, products
  in NTT form against pre-rotated diagonals, one rotation by ``g*k`` per giant
  step.  Galois keys exist for exactly those steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.bfv_params import BFVParameters, LatencyLayout
from secquant.backends.bfv_plan import AffineStage, PolyStage, SquareStage, Stage
from secquant.backends.seal.ciphertext import CiphertextMeta, Residues, read_fresh
from secquant.backends.seal.context import SealScheme, coeff_primes, levels, make_context
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.layout import BSGSLayout, GatherLayout, tile
from secquant.backends.seal.primes import galois_elt
from secquant.backends.seal.rns import IntegerMap, map_ciphertexts
from secquant.errors import ConfigError, ParameterError

__all__ = ["NTT_CACHE_BYTES", "PrimeKit", "ServerProgram", "galois_elements", "pack_latency", "unpack_latency"]

#: Per stage and prime, keep the NTT forms of the diagonals when they fit in this many bytes.
NTT_CACHE_BYTES = 256 * 2**20


@dataclass(eq=False)
class PrimeKit:
    """SEAL objects for one plaintext prime t.

    Attributes:
        t: The plaintext prime.
        context: ``seal::SEALContext``.
        encoder: BatchEncoder; ``evaluator``: Evaluator.
        relin, galois, public: Evaluation and public keys (server side), or None.
        encryptor, decryptor: Client side only.
    """

    t: int
    context: Any
    encoder: Any
    evaluator: Any
    relin: Any = None
    galois: Any = None
    public: Any = None
    encryptor: Any = None
    decryptor: Any = None
    _const: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, params: BFVParameters, t: int) -> PrimeKit:
        """Context, encoder and evaluator for ``params`` and prime ``t``.

        Raises:
            ParameterError: SEAL refuses the parameters.
        """
        sa = seal()
        n = params.poly_degree
        ctx = make_context(SealScheme.BFV, n, coeff_primes(n, params.coeff_bits), params.security, int(t))
        return cls(t=int(t), context=ctx, encoder=sa.BatchEncoder(ctx), evaluator=sa.Evaluator(ctx))

    @property
    def slots(self) -> int:
        """Slots per plaintext (= N)."""
        return int(self.encoder.slot_count())

    def constant(self, value: int) -> Any:
        """A plaintext whose every slot is ``value`` mod t (the constant polynomial; cached)."""
        v = int(value) % self.t
        pt = self._const.get(v)
        if pt is None:
            pt = seal().Plaintext(format(v, "X"))
            self._const[v] = pt
        return pt

    def encode(self, values: NDArray[Any]) -> Any:
        """Batch-encode ``values`` (length N, any integers) mod t."""
        pt = seal().Plaintext()
        arr = np.asarray(values)
        if arr.dtype.kind in "iu" and arr.size and int(np.max(np.abs(arr.astype(np.int64)))) < 2**62:
            reduced = np.mod(arr.astype(np.int64), self.t)
        else:
            reduced = np.mod(arr.astype(object), self.t)
        self.encoder.encode(reduced.astype(np.uint64).tolist(), pt)
        return pt

    def encrypt_zero(self) -> Any:
        """A fresh encryption of 0 (public key on the server, secret key on the client)."""
        sa = seal()
        ct = sa.Ciphertext()
        if self.encryptor is None:
            self.encryptor = sa.Encryptor(self.context, self.public)
            self.encryptor.encrypt(sa.Plaintext("0"), ct)
        else:
            self.encryptor.encrypt_symmetric(sa.Plaintext("0"), ct)
        return ct


# --------------------------------------------------------------------- throughput
@dataclass(frozen=True, eq=False)
class _ScalarAffine:
    """Per output: bias residue and [(|w| mod t, plus-indices, minus-indices)]."""

    rows: tuple[tuple[int, tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]], ...]


def _scalar_affine(stage: AffineStage, t: int) -> _ScalarAffine:
    a, b = stage.reduced(t)
    half = t // 2
    rows = []
    for o in range(stage.d_out):
        row = a[o]
        nz = np.nonzero(row)[0]
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for j in nz:
            w = int(row[j])
            mag, neg = (t - w, True) if w > half else (w, False)
            groups.setdefault(mag, ([], []))[1 if neg else 0].append(int(j))
        rows.append((int(b[o]), tuple((m, tuple(p), tuple(n)) for m, (p, n) in sorted(groups.items()))))
    return _ScalarAffine(tuple(rows))


@dataclass(frozen=True, eq=False)
class _MapAffine:
    """An affine stage as an integer map on residues plus per-output bias residues."""

    imap: IntegerMap
    bias: tuple[int, ...]


def _map_affine(stage: AffineStage, t: int) -> _MapAffine | None:
    """Weights centered mod t as an :class:`IntegerMap`, or None when they are too large for it."""
    a, b = stage.reduced(t)
    centered = np.where(a > t // 2, a - t, a)
    try:
        return _MapAffine(IntegerMap(centered), tuple(int(v) for v in b))
    except ParameterError:
        return None


def _throughput_affine(kit: PrimeKit, prog: _ScalarAffine, xs: list[Any]) -> list[Any]:
    sa, ev = seal(), kit.evaluator
    out = []
    for bias, groups in prog.rows:
        total = None
        for mag, plus, minus in groups:
            s = sa.Ciphertext()
            if len(plus) == 1 and not minus and mag != 1:
                ev.multiply_plain(xs[plus[0]], kit.constant(mag), s)
            else:
                # out-of-place first step: no copies (pybind copies every list element)
                if len(plus) >= 2:
                    ev.add(xs[plus[0]], xs[plus[1]], s)
                    rest_plus, rest_minus = plus[2:], minus
                elif len(plus) == 1 and minus:
                    ev.sub(xs[plus[0]], xs[minus[0]], s)
                    rest_plus, rest_minus = (), minus[1:]
                elif len(plus) == 1:
                    ev.add_many([xs[plus[0]]], s)  # one copy
                    rest_plus, rest_minus = (), ()
                else:
                    ev.negate(xs[minus[0]], s)
                    rest_plus, rest_minus = (), minus[1:]
                for j in rest_plus:
                    ev.add_inplace(s, xs[j])
                for j in rest_minus:
                    ev.sub_inplace(s, xs[j])
                if mag != 1:
                    ev.multiply_plain_inplace(s, kit.constant(mag))
            total = _accumulate(kit, total, s)
        out.append(_finish(kit, total, kit.constant(bias) if bias else None))
    return out


def _accumulate(kit: PrimeKit, total: Any | None, term: Any) -> Any:
    """``total + term`` in place (``term`` itself when there is no total yet)."""
    if total is None:
        return term
    kit.evaluator.add_inplace(total, term)
    return total


def _finish(kit: PrimeKit, total: Any | None, plain: Any | None) -> Any:
    """The accumulated sum (an encryption of zero if nothing was added) plus an optional plaintext."""
    if total is None:
        total = kit.encrypt_zero()
    if plain is not None:
        kit.evaluator.add_plain_inplace(total, plain)
    return total


def _square(kit: PrimeKit, xs: list[Any]) -> list[Any]:
    sa, ev = seal(), kit.evaluator
    out = []
    for x in xs:
        y = sa.Ciphertext()
        ev.square(x, y)
        ev.relinearize_inplace(y, kit.relin)
        out.append(y)
    return out


def _powers(kit: PrimeKit, x: Any, degree: int) -> list[Any]:
    """[x, x^2, ..., x^degree], x^k = x^(k//2) * x^(k - k//2) (depth ceil(log2 degree))."""
    sa, ev = seal(), kit.evaluator
    powers: list[Any] = [None, x]
    for k in range(2, degree + 1):
        y = sa.Ciphertext()
        ev.multiply(powers[k // 2], powers[k - k // 2], y)
        ev.relinearize_inplace(y, kit.relin)
        powers.append(y)
    return powers


def _scalar_mul(kit: PrimeKit, x: Any, c: int, out: Any) -> None:
    """out = c * x for a residue c mod t, multiplying by the centered |c| (SEAL does not center
    constant plaintexts: multiplying by t - 1 instead of negating would grow the noise by t)."""
    ev = kit.evaluator
    c %= kit.t
    if c > kit.t // 2:
        ev.multiply_plain(x, kit.constant(kit.t - c), out)
        ev.negate_inplace(out)
    else:
        ev.multiply_plain(x, kit.constant(c), out)


def _throughput_poly(kit: PrimeKit, stage: PolyStage, xs: list[Any]) -> list[Any]:
    c = np.mod(np.asarray(stage.coeffs).astype(object), kit.t)
    out = []
    for f, x in enumerate(xs):
        powers = _powers(kit, x, stage.degree)
        total = None
        for i in range(1, stage.degree + 1):
            ci = int(c[i, f])
            if ci == 0:
                continue
            term = seal().Ciphertext()
            _scalar_mul(kit, powers[i], ci, term)
            total = _accumulate(kit, total, term)
        out.append(_finish(kit, total, kit.constant(int(c[0, f])) if int(c[0, f]) else None))
    return out


# --------------------------------------------------------------------- latency
def pack_latency(x: NDArray[Any], period: int, n: int) -> NDArray[Any]:
    """Slots for up to two flat inputs (rows of ``x``): each padded to ``period`` and repeated over its row."""
    half = n // 2
    slots = np.zeros(n, dtype=object)
    for r in range(min(2, x.shape[0])):
        block = np.zeros(period, dtype=object)
        block[: x.shape[1]] = x[r]
        slots[r * half:(r + 1) * half] = np.tile(block, half // period)
    return slots


def unpack_latency(slots: NDArray[Any], d_out: int, n: int) -> NDArray[Any]:
    """The two outputs of one latency ciphertext, shape (2, d_out)."""
    half = n // 2
    return np.stack([slots[:d_out], slots[half:half + d_out]])


@dataclass(eq=False)
class _DiagAffine:
    layout: BSGSLayout
    plains: dict[tuple[int, int], Any]  # (k, b) -> plaintext of rot(diag_{gk+b}, -gk)
    bias: Any  # plaintext or None
    cache: bool = False  # keep NTT forms (N * primes * 8 bytes each)
    ntt: dict[tuple[int, int, tuple[int, ...]], Any] = field(default_factory=dict)


def _diag_affine(kit: PrimeKit, stage: AffineStage, lay: BSGSLayout) -> _DiagAffine:
    a, b = stage.reduced(kit.t)
    n = kit.slots
    plains = {kb: kit.encode(tile(diag, lay.period, n)) for kb, diag in lay.prerotated(a).items()}
    bias = kit.encode(tile(b, lay.width, n)) if np.any(b) else None
    primes = len(kit.context.first_context_data().parms().coeff_modulus())
    cache = len(plains) * n * primes * 8 <= NTT_CACHE_BYTES
    return _DiagAffine(lay, plains, bias, cache)


def _latency_affine(kit: PrimeKit, prog: _DiagAffine, x: Any, target: list[int] | None = None) -> Any:
    sa, ev = seal(), kit.evaluator
    lay = prog.layout
    g = lay.baby
    babies: dict[int, Any] = {}
    for b in lay.baby_steps:
        if not any((k, b) in prog.plains for k in lay.giant_steps):
            continue
        r = sa.Ciphertext()
        if b == 0:
            ev.transform_to_ntt(x, r)
        else:
            ev.rotate_rows(x, b, kit.galois, r)
            ev.transform_to_ntt_inplace(r)
        babies[b] = r
    pid = x.parms_id()
    tmp_pt = sa.Plaintext()
    prod = sa.Ciphertext()
    y = None
    for k in lay.giant_steps:
        inner = None
        for b in lay.baby_steps:
            pt = prog.plains.get((k, b))
            if pt is None:
                continue
            key = (k, b, tuple(pid))
            ntt = prog.ntt.get(key)
            if ntt is None:
                ntt = sa.Plaintext() if prog.cache else tmp_pt
                ev.transform_to_ntt(pt, pid, ntt)
                if prog.cache:
                    prog.ntt[key] = ntt
            if inner is None:
                inner = sa.Ciphertext()
                ev.multiply_plain(babies[b], ntt, inner)
            else:
                ev.multiply_plain(babies[b], ntt, prod)
                ev.add_inplace(inner, prod)
        if inner is None:
            continue
        ev.transform_from_ntt_inplace(inner)
        if target is not None and list(inner.parms_id()) != target:
            ev.mod_switch_to_inplace(inner, target)  # giant steps and folds on the shorter chain
        if k:
            ev.rotate_rows_inplace(inner, g * k, kit.galois)
        if y is None:
            y = inner
        else:
            ev.add_inplace(y, inner)
    if y is None:
        y = kit.encrypt_zero()
    tmp = sa.Ciphertext()
    for step in lay.fold_steps:
        ev.rotate_rows(y, step, kit.galois, tmp)
        ev.add_inplace(y, tmp)
    if prog.bias is not None:
        ev.add_plain_inplace(y, prog.bias)
    return y


def _latency_poly(kit: PrimeKit, stage: PolyStage, period: int, x: Any) -> Any:
    sa, ev = seal(), kit.evaluator
    c = np.mod(np.asarray(stage.coeffs).astype(object), kit.t)
    powers = _powers(kit, x, stage.degree)
    total = None
    for i in range(1, stage.degree + 1):
        if not np.any(c[i]):
            continue
        term = sa.Ciphertext()
        if np.all(c[i] == c[i, 0]):
            _scalar_mul(kit, powers[i], int(c[i, 0]), term)
        else:
            ev.multiply_plain(powers[i], kit.encode(tile(c[i], period, kit.slots)), term)
        total = _accumulate(kit, total, term)
    constant = kit.encode(tile(c[0], period, kit.slots)) if np.any(c[0]) else None
    return _finish(kit, total, constant)


# --------------------------------------------------------------------- program
class ServerProgram:
    """The plan compiled for one prime: integer maps, scalar groups or encoded diagonals, ready to run."""

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
        if not isinstance(st, AffineStage):
            return st
        layout: LatencyLayout | None = self.params.layout
        if layout is None:
            return _map_affine(st, self.kit.t) or _scalar_affine(st, self.kit.t)
        gather = layout.gather(self.params.poly_degree)
        if index == 0 and gather is not None:
            return _gather_affine(self.kit, st, gather)
        lay = layout.stages[index]
        if lay is None:  # pragma: no cover - layout built from the same stages
            raise ConfigError(f"no layout for stage {st.name}")
        return _diag_affine(self.kit, st, lay)

    def _switch(self, xs: list[Any], stage: int) -> list[Any]:
        """Drop data primes down to the schedule's level after ``stage``."""
        want = self.params.levels[stage]
        pid = self._parms[want]
        ev = self.kit.evaluator
        for x in xs:
            if list(x.parms_id()) != pid:
                ev.mod_switch_to_inplace(x, pid)
        return xs

    @property
    def takes_residues(self) -> bool:
        """THROUGHPUT whose first stage is an integer map: inputs are parsed, not loaded into SEAL."""
        return bool(self._compiled) and isinstance(self._compiled[0], _MapAffine)

    def residues(self, blob: bytes | memoryview) -> Residues:
        """Parse a fresh input ciphertext from the wire and check it as SEAL's ``load`` would.

        Raises:
            ConfigError: malformed, seeded, not fresh, or a residue not below its prime.
        """
        return read_fresh(blob, self._top.parms_id, self._top.moduli, False, "a BFV input ciphertext")

    def _zero(self, meta: CiphertextMeta) -> Any:
        return self.kit.encrypt_zero()

    def _integer_map(self, prog: _MapAffine, xs: list[Any]) -> list[Any]:
        out = map_ciphertexts(prog.imap, xs, self.kit.context, self._moduli, self._zero)
        for ct, bias in zip(out, prog.bias):
            if bias:
                self.kit.evaluator.add_plain_inplace(ct, self.kit.constant(bias))
        return out

    def run_throughput(self, xs: list[Any]) -> list[Any]:
        """Features in (ciphertexts, or residues when :attr:`takes_residues`), features out."""
        for i, (st, prog) in enumerate(zip(self.stages, self._compiled)):
            if isinstance(prog, _MapAffine):
                xs = self._integer_map(prog, xs)
            elif isinstance(st, AffineStage):
                xs = _throughput_affine(self.kit, prog, xs)
            elif isinstance(st, SquareStage):
                xs = _square(self.kit, xs)
            else:
                xs = _throughput_poly(self.kit, st, xs)
            xs = self._switch(xs, i)
        return xs

    def run_latency(self, cts: list[Any]) -> Any:
        """The ciphertexts of one packed input (or of two, one per row, without gathering) in, one out."""
        period = self.params.layout.period if self.params.layout else 0
        x = cts[0]
        for i, (st, prog) in enumerate(zip(self.stages, self._compiled)):
            target = self._parms[self.params.levels[i]]
            if isinstance(prog, _GatherAffine):
                x = _latency_gather(self.kit, prog, cts, target)
            elif isinstance(st, AffineStage):
                x = _latency_affine(self.kit, prog, x, target)
            elif isinstance(st, SquareStage):
                x = _square(self.kit, [x])[0]
            else:
                x = _latency_poly(self.kit, st, period, x)
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


@dataclass(eq=False)
class _GatherAffine:
    weights: list[Any]  # one plaintext per chunk
    folds: list[int]  # rotate-and-add steps over all N slots; N/2 swaps the rows
    bias: Any


def _gather_affine(kit: PrimeKit, stage: AffineStage, gather: GatherLayout) -> _GatherAffine:
    a, b = stage.reduced(kit.t)
    weights = [kit.encode(w) for w in gather.weights(a)]
    bias = kit.encode(tile(b, gather.period, kit.slots)) if np.any(b) else None
    return _GatherAffine(weights, gather.fold_steps, bias)


def _latency_gather(kit: PrimeKit, prog: _GatherAffine, cts: list[Any], target: list[int] | None = None) -> Any:
    sa, ev = seal(), kit.evaluator
    z = sa.Ciphertext()
    ev.multiply_plain(cts[0], prog.weights[0], z)
    prod = sa.Ciphertext()
    for ct, w in zip(cts[1:], prog.weights[1:]):
        ev.multiply_plain(ct, w, prod)
        ev.add_inplace(z, prod)
    if target is not None and list(z.parms_id()) != target:
        ev.mod_switch_to_inplace(z, target)  # rotate on the shorter chain
    tmp = sa.Ciphertext()
    for step in prog.folds:
        if step == kit.slots // 2:
            ev.rotate_columns(z, kit.galois, tmp)
        else:
            ev.rotate_rows(z, step, kit.galois, tmp)
        ev.add_inplace(z, tmp)
    if prog.bias is not None:
        ev.add_plain_inplace(z, prog.bias)
    return z
