"""BFV parameters from the bounds: plaintext (CRT) primes, ring degree, modulus chain.

Everything here is key-less arithmetic on the plan and ``qm.bounds()``:

* **Plaintext primes.** The product T of the primes t_i (each t_i = 1 mod 2N,
  so slots batch) must hold every layer: ``T >= qm.modulus_needed``.  One prime
  holds at most 60 bits; past that the circuit runs once per prime and the
  results recombine by CRT (exact, Python ints).
* **Noise.** A conservative estimate of the invariant noise budget, in bits,
  stage by stage (SEAL's heuristics rounded up; see :func:`noise_trace`).  The
  data part of the coefficient modulus is sized so that the estimate ends at
  least ``margin`` bits above zero.
* **Security.** The total coefficient modulus (data primes plus SEAL's special
  prime) stays within the HomomorphicEncryption.org bound for N at the
  requested level (128 bits by default; 192 and 256 are accepted; nothing
  weaker is offered).
* **Cost.** Among the feasible (N, prime size) pairs the cheapest is chosen:
  per slot ``k * (L + 1)`` in throughput mode, ``k * N * (L + 1)**2`` in latency
  mode (rotations, i.e. key switches, dominate), k primes, L data primes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Mode
from secquant.backends.bfv_plan import AffineStage, SquareStage, Stage
from secquant.backends.seal.layout import (
    BSGSLayout,
    GatherLayout,
    gather_cols,
    next_pow2,
    nonzero_diagonals,
    search_bsgs,
)
from secquant.backends.seal.primes import is_prime, primes_1_mod
from secquant.backends.seal.security import estimate_security, max_coeff_modulus_bits
from secquant.errors import ConfigError, ModulusOverflowError, ParameterError
from secquant.quant.model import QuantizedModel

__all__ = ["BFVClientParams", "BFVParameters", "LatencyLayout", "choose_parameters", "latency_layout", "noise_trace"]

POLY_DEGREES = (4096, 8192, 16384, 32768)
MAX_PRIME_BITS = 60
#: Default bits of noise budget the estimate must leave at the end.
DEFAULT_MARGIN = 10


@dataclass(frozen=True, eq=False)
class LatencyLayout:
    """Slot layout of latency mode: every vector repeats with ``period`` along each row.

    With ``gather_cols`` (the first stage is affine), one input fills both rows
    and the first stage is computed from client-gathered blocks
    (:class:`~secquant.backends.seal.layout.GatherLayout` over all N slots: its
    last fold step, N/2, swaps the two rows); otherwise each row holds one
    input and every affine stage uses baby-step giant-step diagonals.
    """

    period: int
    stages: tuple[BSGSLayout | None, ...]
    gather_cols: NDArray[np.int64] | None = field(default=None, repr=False)

    def gather(self, n: int) -> GatherLayout | None:
        """The gathering of the first stage in a ring of degree ``n``, or None."""
        return None if self.gather_cols is None else GatherLayout(self.gather_cols, self.period, n)

    @property
    def steps(self) -> tuple[int, ...]:
        """Every baby-step giant-step rotation step (left rotations of rows)."""
        used: set[int] = set()
        for st in self.stages:
            if st is not None:
                used |= st.steps
        return tuple(sorted(used))

    def all_steps(self, n: int) -> tuple[int, ...]:
        """Row rotation steps including the gather fold (the row swap is not a row step)."""
        gather = self.gather(n)
        extra = {s for s in gather.fold_steps if s < n // 2} if gather else set()
        return tuple(sorted(set(self.steps) | extra))

    def rotations(self, n: int) -> int:
        """Key switches per evaluation (per CRT prime)."""
        total = sum(st.rotations for st in self.stages if st is not None)
        gather = self.gather(n)
        return total + (len(gather.fold_steps) if gather else 0)

    @property
    def inputs_per_ciphertext(self) -> int:
        """2 (one per row) without gathering, 1 with."""
        return 1 if self.gather_cols is not None else 2


def _hybrid(nonzero: NDArray[np.bool_], d_out: int, period: int, keys: set[int]) -> BSGSLayout:
    """The cheaper of the full-width layout and the hybrid one (out_width diagonals, then a fold)."""
    lay = search_bsgs(nonzero_diagonals(nonzero, period, period), period, keys)
    width = next_pow2(d_out)
    if width < period:
        hybrid = search_bsgs(nonzero_diagonals(nonzero, period, width), period, keys, width=width)
        if hybrid.rotations + len(hybrid.steps - keys) < lay.rotations + len(lay.steps - keys):
            lay = hybrid
    return lay


def latency_layout(stages: list[Stage], d_in: int) -> LatencyLayout:
    """Period, gathering and BSGS schedules of latency mode."""
    gather = gather_cols(np.asarray(stages[0].matrix)) if stages and isinstance(stages[0], AffineStage) else None
    dims = [] if gather is not None else [d_in]
    for st in stages:
        dims.append(st.d_out if isinstance(st, AffineStage) else st.dim)
    period = next_pow2(max(dims or [1]))
    affine = {idx: st for idx, st in enumerate(stages)
              if isinstance(st, AffineStage) and not (idx == 0 and gather is not None)}
    nonzero = {idx: np.asarray(st.matrix) != 0 for idx, st in affine.items()}
    count = {idx: len(nonzero_diagonals(nz, period, period)) for idx, nz in nonzero.items()}
    # largest stages first; later ones prefer steps whose Galois keys already exist
    keys: set[int] = set()
    chosen: dict[int, BSGSLayout] = {}
    for idx in sorted(affine, key=lambda i: -count[i]):
        chosen[idx] = _hybrid(nonzero[idx], affine[idx].d_out, period, keys)
        keys |= chosen[idx].steps
    layouts = tuple(chosen.get(i) for i in range(len(stages)))
    return LatencyLayout(period=period, stages=layouts, gather_cols=gather)


@functools.lru_cache(maxsize=256)
def _int_row_l1(stage: AffineStage) -> tuple[int, int]:
    """(max |A|, max row L1 norm of A) over the exact integers."""
    a = np.asarray(stage.matrix)
    if a.dtype != object and a.size and int(np.max(np.abs(a))) < 2**40:
        a64 = np.abs(a.astype(np.int64))
        return int(np.max(a64)), int(np.max(np.sum(a64, axis=1)))
    ao = np.abs(a.astype(object))
    return (int(np.max(ao)), int(np.max(np.sum(ao, axis=1)))) if ao.size else (0, 0)


def _row_l1_bits(stage: AffineStage, t: int) -> float:
    """log2 of the largest row L1 norm of A mod t, centered (the scalar multiply noise factor)."""
    top, l1 = _int_row_l1(stage)
    if 2 * top < t:
        return math.log2(max(1, l1))
    a, _ = stage.reduced(t)
    a = a.astype(object)
    centered = np.where(a > t // 2, a - t, a)
    worst = int(np.max(np.sum(np.abs(centered), axis=1))) if centered.size else 0
    return math.log2(max(1, worst))


def _consumption(stages: list[Stage], mode: Mode, n: int, t: int, layout: LatencyLayout | None) -> list[float]:
    tb, lg = math.log2(t), math.log2(n)
    mult = tb + lg + 2
    out = []
    for i, st in enumerate(stages):
        if isinstance(st, AffineStage):
            if mode is Mode.THROUGHPUT:
                out.append(_row_l1_bits(st, t) + 1)
            else:
                lay = layout.stages[i] if layout else None
                if lay is not None:
                    nd = len(lay.diagonals) * lay.blocks
                elif layout is not None and layout.gather_cols is not None and i == 0:
                    nd = layout.gather_cols.shape[1]
                else:
                    nd = st.d_in
                out.append(tb + lg / 2 + math.log2(max(1, nd)) / 2 + 3 + 2)
        elif isinstance(st, SquareStage):
            out.append(mult)
        else:
            used = st.depth * mult
            c = np.mod(np.asarray(st.coeffs).astype(object), t)
            uniform = bool(np.all(c == c[:, :1]))
            if mode is Mode.THROUGHPUT or uniform:
                centered = np.where(c > t // 2, c - t, c)
                used += math.log2(max(1, int(np.max(np.sum(np.abs(centered), axis=0))))) + 1
            else:
                used += tb + lg / 2 + math.log2(st.degree + 1) / 2 + 3
            out.append(used)
    return out


def noise_trace(
    stages: list[Stage], mode: Mode, n: int, t: int, data_bits: int | list[int], layout: LatencyLayout | None,
    margin: int = DEFAULT_MARGIN,
) -> list[dict[str, Any]]:
    """Estimated invariant noise budget (bits) and modulus level after encryption and each stage.

    The figures are SEAL's heuristics made conservative: fresh budget
    ``log2 q - log2 t - log2(N)/2 - 5`` (measured: 5 bits higher); a ciphertext
    multiplication with relinearization costs ``log2 t + log2 N + 2``; a
    scalar multiply-accumulate ``log2(max row L1 norm) + 1``; a multiply by a
    batch-encoded plaintext ``log2 t + log2(N)/2 + log2(#diagonals)/2 + 3``; a
    rotation stage 2 bits.  The real budget is reported by the client after
    decryption; the tests check that the estimate stays below it.

    With the data primes given as a list, each stage ends with a modulus switch
    to the fewest primes whose fresh-budget cap still covers the rest of the
    circuit plus ``margin`` (BFV modulus switching keeps the budget below that
    cap), so later stages run on a shorter chain: ``data_primes`` per entry.
    """
    tb, lg = math.log2(t), math.log2(n)
    bits = list(data_bits) if isinstance(data_bits, list) else [int(data_bits)]
    levels = len(bits) if isinstance(data_bits, list) else 1

    def cap(level: int) -> float:
        return sum(bits[:level]) - tb - lg / 2 - 5

    cons = _consumption(stages, mode, n, t, layout)
    budget = cap(levels)
    trace = [{"stage": "encrypt", "budget_bits": round(budget, 1), "data_primes": levels}]
    for i, st in enumerate(stages):
        budget -= cons[i]
        rest = sum(cons[i + 1:]) + margin
        while isinstance(data_bits, list) and levels > 1 and cap(levels - 1) >= rest and budget >= rest:
            levels -= 1
        budget = min(budget, cap(levels))
        trace.append({"stage": st.name, "kind": type(st).__name__, "budget_bits": round(budget, 1),
                      "data_primes": levels})
    return trace


@dataclass(frozen=True)
class BFVParameters:
    """One choice of BFV parameters for a plan.

    Attributes:
        mode: Slot layout.
        poly_degree: N (slots per ciphertext).
        coeff_bits: Bit sizes of the coefficient primes; the last is SEAL's special prime.
        plain_moduli: CRT primes t_i, each = 1 mod 2N.
        security: Level the user asked for (128, 192 or 256).
        margin: Bits of estimated noise budget required at the end.
        trace: Estimated budget per stage for the smallest t_i.
        layout: Latency-mode layout (None in throughput mode).
    """

    mode: Mode
    poly_degree: int
    coeff_bits: tuple[int, ...]
    plain_moduli: tuple[int, ...]
    security: int
    margin: int
    trace: tuple[dict[str, Any], ...] = field(repr=False)
    layout: LatencyLayout | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for t in self.plain_moduli:
            if (t - 1) % (2 * self.poly_degree) or not is_prime(t):
                raise ParameterError(f"plain modulus {t} is not a prime = 1 mod 2N={2 * self.poly_degree}")

    @property
    def total_plain_modulus(self) -> int:
        """Product of the CRT primes."""
        out = 1
        for t in self.plain_moduli:
            out *= t
        return out

    @property
    def data_bits(self) -> int:
        """Bits of the ciphertext modulus (without the special prime)."""
        return sum(self.coeff_bits[:-1])

    @property
    def levels(self) -> tuple[int, ...]:
        """Data primes kept after each stage (modulus switching schedule)."""
        return tuple(int(s["data_primes"]) for s in self.trace[1:])

    @property
    def final_budget(self) -> float:
        """Estimated noise budget left after the last stage (bits)."""
        return float(self.trace[-1]["budget_bits"])

    @property
    def slots(self) -> int:
        """Inputs per ciphertext: N in throughput mode, 2 in latency mode (one per row)."""
        if self.mode is Mode.THROUGHPUT:
            return self.poly_degree
        return self.layout.inputs_per_ciphertext if self.layout else 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (sizes are filled in by the backend)."""
        total = sum(self.coeff_bits)
        out: dict[str, Any] = {
            "scheme": "bfv",
            "mode": self.mode.value,
            "packing": ("throughput: one ciphertext per feature, one input per slot (N inputs per batch)"
                        if self.mode is Mode.THROUGHPUT else
                        f"latency: one input per ciphertext, repeated with period {self.layout.period if self.layout else 0}; "
                        "first stage from client-gathered blocks, then baby-step giant-step diagonal products"),
            "poly_degree": self.poly_degree,
            "coeff_modulus_bits": list(self.coeff_bits),
            "coeff_modulus_total_bits": total,
            "special_prime_bits": self.coeff_bits[-1],
            "plain_moduli": [int(t) for t in self.plain_moduli],
            "plain_modulus_bits": [t.bit_length() for t in self.plain_moduli],
            "crt_primes": len(self.plain_moduli),
            "total_plain_modulus_bits": self.total_plain_modulus.bit_length(),
            "requested_security_bits": self.security,
            "estimated_security_bits": estimate_security(self.poly_degree, total),
            "max_coeff_bits_at_128": max_coeff_modulus_bits(self.poly_degree, 128),
            "noise_margin_bits": self.margin,
            "noise_budget_estimate": list(self.trace),
            "noise_estimate_note": "conservative heuristic estimate (SEAL noise model rounded up), not a proof",
        }
        if self.layout is not None:
            n = self.poly_degree
            out["period"] = self.layout.period
            out["rotation_steps"] = list(self.layout.all_steps(n))
            gather = self.layout.gather(n)
            out["galois_keys"] = len(self.layout.all_steps(n)) + (1 if gather else 0)
            out["rotations_per_prime"] = self.layout.rotations(n)
            if gather is not None:
                out["first_stage"] = (f"client-gathered blocks: {gather.width} inputs per output, "
                                      f"{gather.chunks} ciphertext(s) per input")
        return out


@dataclass(frozen=True, eq=False)
class BFVClientParams:
    """The client's view of :class:`BFVParameters`: enough to make keys, pack and unpack; no stage.

    Attributes:
        mode: Slot layout.
        poly_degree: N.
        coeff_bits: Bit sizes of the coefficient primes (special prime last).
        plain_moduli: CRT primes t_i, each = 1 mod 2N.
        security: 128, 192 or 256.
        period: Latency-mode slot period (0 in throughput mode).
        gather: Latency-mode gathering of the first stage (its sparsity pattern only), or None.
        galois: Galois elements the server rotates with (empty in throughput mode).

    Raises:
        ConfigError: a field is out of range.
    """

    mode: Mode
    poly_degree: int
    coeff_bits: tuple[int, ...]
    plain_moduli: tuple[int, ...]
    security: int
    period: int = 0
    gather: GatherLayout | None = field(default=None, repr=False)
    galois: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.poly_degree not in POLY_DEGREES or self.security not in (128, 192, 256):
            raise ConfigError(f"BFV client parameters: N={self.poly_degree}, security={self.security} are not offered")
        if not self.plain_moduli or not self.coeff_bits:
            raise ConfigError("BFV client parameters need plaintext primes and coefficient primes")
        for t in self.plain_moduli:
            if (t - 1) % (2 * self.poly_degree) or not is_prime(t):
                raise ConfigError(f"plain modulus {t} is not a prime = 1 mod 2N={2 * self.poly_degree}")
        if self.mode is Mode.LATENCY and not 0 < self.period <= self.poly_degree // 2:
            raise ConfigError(f"latency mode needs a period in (0, N/2], got {self.period}")

    @property
    def total_plain_modulus(self) -> int:
        """Product of the CRT primes."""
        return math.prod(self.plain_moduli)

    @property
    def inputs_per_ciphertext(self) -> int:
        """Latency mode: 1 with gathering, else 2 (one per row)."""
        return 1 if self.gather is not None else 2

    @classmethod
    def of(cls, params: BFVParameters, galois: list[int]) -> BFVClientParams:
        """The client view of ``params``; ``galois`` from :func:`bfv_eval.galois_elements`."""
        lay = params.layout
        return cls(params.mode, params.poly_degree, tuple(params.coeff_bits), tuple(params.plain_moduli),
                   params.security, lay.period if lay else 0, lay.gather(params.poly_degree) if lay else None,
                   tuple(galois))

    def to_meta(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-ready fields and arrays (the gather pattern) for a client spec."""
        meta = {"mode": self.mode.value, "poly_degree": self.poly_degree, "coeff_bits": list(self.coeff_bits),
                "plain_moduli": [str(t) for t in self.plain_moduli], "security": self.security,
                "period": self.period, "galois": [int(g) for g in self.galois]}
        arrays = {"gather_cols": np.asarray(self.gather.cols, dtype=np.int64)} if self.gather is not None else {}
        return meta, arrays

    @classmethod
    def from_meta(cls, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> BFVClientParams:
        """Rebuild from :meth:`to_meta`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            cols = arrays.get("gather_cols")
            if cols is not None and (cols.ndim != 2 or cols.dtype.kind not in "iu"):
                raise ConfigError("BFV client spec: the gather pattern must be a 2-d integer array")
            return cls(Mode(meta["mode"]), int(meta["poly_degree"]), tuple(int(b) for b in meta["coeff_bits"]),
                       tuple(int(t) for t in meta["plain_moduli"]), int(meta["security"]), int(meta["period"]),
                       GatherLayout(np.asarray(cols, dtype=np.int64), int(meta["period"]), int(meta["poly_degree"]))
                       if cols is not None else None,
                       tuple(int(g) for g in meta["galois"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed BFV client spec: {exc!r}") from exc


def _split_data_bits(bits: int) -> list[int]:
    count = max(1, math.ceil(bits / MAX_PRIME_BITS))
    size = math.ceil(bits / count)
    return [max(size, 20)] * count


def _crt_primes(n: int, tbits: int, needed: int, exclude: list[int]) -> list[int] | None:
    """Fewest tbits-bit primes = 1 mod 2N whose product reaches ``needed`` (None if too few exist)."""
    primes: list[int] = []
    product = 1
    cap = 64
    try:
        pool = primes_1_mod(2 * n, tbits, min(cap, 1 + needed.bit_length() // max(1, tbits - 1) + 1), exclude)
    except ParameterError:
        return None
    for p in pool:
        primes.append(p)
        product *= p
        if product >= needed:
            return primes
    return None


def _attempt(
    stages: list[Stage], mode: Mode, n: int, plain: list[int], security: int, margin: int,
    layout: LatencyLayout | None,
) -> BFVParameters | None:
    if layout is not None and layout.period > n // 2:
        return None
    t = max(plain)
    need = margin + sum(_consumption(stages, mode, n, t, layout)) + math.log2(t) + math.log2(n) / 2 + 5
    data_bits = max(1, math.ceil(need))
    coeff = _split_data_bits(data_bits)
    coeff = coeff + [max(coeff)]
    if sum(coeff) > max_coeff_modulus_bits(n, security):
        return None
    coeff_primes: list[int] = []
    for b in sorted(set(coeff)):
        coeff_primes += primes_1_mod(2 * n, b, coeff.count(b))
    if set(coeff_primes) & set(plain):
        return None
    trace = noise_trace(stages, mode, n, t, list(coeff[:-1]), layout, margin)
    return BFVParameters(mode, n, tuple(coeff), tuple(plain), security, margin, tuple(trace), layout)


def _cost(p: BFVParameters) -> float:
    k, l_data = len(p.plain_moduli), len(p.coeff_bits) - 1
    if p.mode is Mode.THROUGHPUT:
        return k * (l_data + 1) * (1 + p.poly_degree / 65536)
    return k * p.poly_degree * (l_data + 1) ** 2


def choose_parameters(
    qm: QuantizedModel,
    stages: list[Stage],
    mode: Mode,
    *,
    plain_modulus: int | None = None,
    poly_degree: int | None = None,
    security: int = 128,
    margin: int = DEFAULT_MARGIN,
) -> BFVParameters:
    """The cheapest secure parameters for ``stages``; no key is made.

    Args:
        qm: The model (its bounds fix the plaintext modulus).
        stages: Its plan.
        mode: Slot layout.
        plain_modulus: Force one plaintext prime t (no CRT).
        poly_degree: Force N.
        security: 128 (default), 192 or 256 bits.
        margin: Bits of estimated noise budget left at the end.

    Raises:
        ModulusOverflowError: ``plain_modulus`` is smaller than the bounds need.
        ParameterError: no secure parameter set fits (too deep, or forced values clash).
        ConfigError: invalid option values.
    """
    if security not in (128, 192, 256):
        raise ConfigError(f"security must be 128, 192 or 256 bits (nothing weaker is offered), got {security}")
    if poly_degree is not None and poly_degree not in POLY_DEGREES:
        raise ConfigError(f"poly_degree must be one of {POLY_DEGREES}, got {poly_degree}")
    if not isinstance(margin, int) or margin < 1:
        raise ConfigError(f"margin must be a positive number of bits, got {margin!r}")
    needed = qm.modulus_needed
    if plain_modulus is not None:
        if isinstance(plain_modulus, bool) or not isinstance(plain_modulus, (int, np.integer)):
            raise ConfigError(f"plain_modulus must be an int, got {type(plain_modulus).__name__}")
        qm.bounds().check(int(plain_modulus))  # ModulusOverflowError before anything else
        if not is_prime(int(plain_modulus)):
            raise ParameterError(f"plain_modulus {plain_modulus} is not prime; BFV batching needs a prime = 1 mod 2N")
    d_in = int(np.prod(qm.input_shape))
    layout = latency_layout(stages, d_in) if mode is Mode.LATENCY else None
    degrees = [poly_degree] if poly_degree else list(POLY_DEGREES)
    best: BFVParameters | None = None
    tried: list[str] = []
    for n in degrees:
        if plain_modulus is not None:
            if (int(plain_modulus) - 1) % (2 * n):
                tried.append(f"N={n}: plain_modulus {plain_modulus} is not 1 mod {2 * n}")
                continue
            choices = [[int(plain_modulus)]]
        else:
            choices = []
            for tbits in range(MAX_PRIME_BITS, (2 * n).bit_length(), -1):
                primes = _crt_primes(n, tbits, needed, [])
                if primes is not None:
                    choices.append(primes)
        for plain in choices:
            cand = _attempt(stages, mode, n, plain, security, margin, layout)
            if cand is None:
                continue
            if best is None or _cost(cand) < _cost(best):
                best = cand
        if best is None:
            tried.append(f"N={n}: no prime size leaves {margin} bits of noise budget within "
                         f"{max_coeff_modulus_bits(n, security)} coefficient bits")
    if best is None:
        raise ParameterError(
            f"no BFV parameters at {security}-bit security evaluate this model ({qm.multiplicative_depth} "
            f"ciphertext multiplications, {needed.bit_length()}-bit bound, mode {mode.value}): "
            + "; ".join(tried) + ". Reduce the depth or the bit widths, or use another mode."
        )
    if best.total_plain_modulus < needed:  # pragma: no cover - guaranteed above
        raise ModulusOverflowError("CRT primes do not reach the bound", modulus=best.total_plain_modulus,
                                   modulus_needed=needed)
    return best
