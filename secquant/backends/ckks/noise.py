"""The CKKS noise estimate: how far a decrypted slot can be from the exact value, stage by stage.

Every bound is on one slot (the canonical embedding), in *message units*: a
ciphertext at scale Δ whose slot holds the integer ``y`` carries the message
``m = Δ·y``; an error ``e`` in message units is ``e/Δ`` in integer units.

The constants are the high-probability bounds of Cheon, Kim, Kim and Song,
"Homomorphic Encryption for Arithmetic of Approximate Numbers" (ASIACRYPT
2017), Lemmas 1-3, with SEAL's distributions: Gaussian errors of σ = 3.2 and a
uniform ternary secret (expected Hamming weight h = 2N/3).  They are six-σ
heuristic bounds on sums of independent terms, so they hold for every slot with
overwhelming but not certain probability; ``tests/backends/test_ckks*.py``
checks them on real ciphertexts.

:func:`propagate` carries the scale, the message bound and the error bound of
the ciphertexts through every stage of one candidate modulus chain (see
:mod:`~.params` for how scales are chosen), and lists every message that would
reach its modulus.  Errors are in output-integer units.  The roundings of
requantize ops, which CKKS does not do, enter the error where they arise
(``Stage.rounding``, :mod:`~.fold`) and are carried like noise from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.ckks.chain import Free
from secquant.backends.ckks.layout import StageLayout, fold_first
from secquant.backends.ckks.options import CKKSOptions
from secquant.backends.ckks.pairs import paired
from secquant.backends.ckks.plan import PolyPlan, StagePlan
from secquant.backends.ckks.stages import (
    Stage,
    StageKind,
    power_depth,
    power_split,
    powers_needed,
)
from secquant.backends.seal.privacy import CircuitPrivacy, ckks_flood_error_factor
from secquant.errors import ParameterError

__all__ = ["DOUBLE_REL", "FFT_REL", "POLY_SCALE_REL", "NoiseModel", "check_message", "propagate"]

SIGMA = 3.2
#: Relative error of one double-precision FFT (encode or decode) over N slots, generously.
FFT_REL = 2.0**-44


@dataclass(frozen=True)
class NoiseModel:
    """Noise bounds for one ring dimension.

    Attributes:
        poly_degree: N, a power of two.
    """

    poly_degree: int

    @property
    def _h(self) -> float:
        return 2.0 * self.poly_degree / 3.0

    @property
    def fresh(self) -> float:
        """Encryption noise of a fresh ciphertext: 8√2σN + 6σ√N + 16σ√(hN)."""
        n = self.poly_degree
        return 8 * math.sqrt(2) * SIGMA * n + 6 * SIGMA * math.sqrt(n) + 16 * SIGMA * math.sqrt(self._h * n)

    @property
    def rounding(self) -> float:
        """Encoding a vector rounds N coefficients by ≤ 1/2 each: six σ of their sum, 6·√(N/12)."""
        return 6 * math.sqrt(self.poly_degree / 12.0)

    @property
    def rescale(self) -> float:
        """Noise a rescale adds: √(N/3)·(3 + 8√h)."""
        return math.sqrt(self.poly_degree / 3.0) * (3 + 8 * math.sqrt(self._h))

    @property
    def digit_mean(self) -> float:
        """Slot bound of the *mean* of one key-switching digit times its key error, per unit of q_i.

        SEAL decomposes ``c1`` into digits uniform on ``[0, q_i)``, not centred:
        their mean is ``(q_i/2)·(1 + X + ... + X**(N-1))``, whose slot values
        ``2/(1 - ζ_j)`` peak at slot 0 (about 2N/π), where ``ζ_0`` is the root
        nearest 1. Times the key error (six σ: 6σ√N per slot) this is a
        deterministic, key-dependent error concentrated in the first slots
        (measured at N=8192: 1.3e6 message units at slot 0 after one rotation,
        5× the zero-mean term; the expected value from this formula is 1.1e6).
        """
        n = self.poly_degree
        return 0.5 / math.sin(math.pi / (2 * n)) * 6 * SIGMA * math.sqrt(n)

    def key_switch(self, n_primes: int, largest_prime: float, special_prime: float) -> float:
        """Noise one relinearization or rotation adds at a level with ``n_primes`` primes.

        Each of the ``n_primes`` RNS digits (below ``largest_prime``) meets a key
        error: a zero-mean part of 8σN/√3 and the digits' non-zero mean
        (:attr:`digit_mean`); dividing by the special prime leaves
        ``n_primes·(q/P)·(8σN/√3 + digit_mean)``, plus the rounding of that division.
        """
        per_digit = 8 * SIGMA * self.poly_degree / math.sqrt(3) + self.digit_mean
        return n_primes * (largest_prime / special_prime) * per_digit + self.rescale


#: Relative scale mismatch allowed between the terms of a POLY stage before they are summed: SEAL
#: computes S_i·s_i in doubles, so each term's scale is q·Δ_out within a few ulps; the evaluator sets
#: them equal (SEAL adds only equal scales) and the error bound charges this relative amount.
POLY_SCALE_REL = 2.0**-48
#: Relative error of a double (a coefficient A_0 past 2**53 is rounded when encoded).
DOUBLE_REL = 2.0**-53


def check_message(what: str, message: float, modulus: int) -> str | None:
    """A problem line when ``message`` reaches ``modulus / 2`` (it would wrap around), else None."""
    if message >= modulus / 2:
        return (f"{what}: message up to 2**{math.log2(message):.2f} reaches the modulus "
                f"2**{math.log2(modulus):.2f}/2 and would wrap around")
    return None


@dataclass
class _Walk:
    """The state carried from stage to stage: scale, error (integer units) and remaining primes."""

    noise: NoiseModel
    opts: CKKSOptions
    special: int
    target: float
    scale: float
    err: float
    level: list[int]
    problems: list[str] = field(default_factory=list)

    def check(self, what: str, message: float, modulus: int) -> None:
        problem = check_message(what, message, modulus)
        if problem:
            self.problems.append(problem)

    @property
    def latency(self) -> bool:
        return self.opts.mode is Mode.LATENCY


def _shift(w: _Walk, st: Stage) -> StagePlan:
    """A plaintext addition: no level; the encoded constant rounds."""
    msg = w.scale * st.partial
    w.err = w.err + (w.noise.rounding if w.latency else 0.5) / w.scale
    w.check(f"stage {st.names}", msg, math.prod(w.level))
    return StagePlan(st, tuple(w.level), 0, w.scale, w.scale, 0.0, msg, w.err)


def _free_affine(w: _Walk, st: Stage) -> StagePlan:
    """Integer weights at scale 1: exact products, no rescale, no level."""
    msg = w.scale * st.partial
    w.err = st.row_l1 * w.err + 0.5 / w.scale
    w.check(f"stage {st.names}", msg, math.prod(w.level))
    return StagePlan(st, tuple(w.level), 0, w.scale, w.scale, 1.0, msg, w.err)


def _square(w: _Walk, st: Stage, m_in: float, ks: float, q: int) -> tuple[float, float, float]:
    """(scale_out, message, error in integer units) of ``x**2`` rescaled by ``q``."""
    scale_out = w.scale * w.scale / q
    e_msg = w.err * w.scale  # message units
    prod = 2 * m_in * e_msg + e_msg * e_msg + ks + FFT_REL * m_in * m_in
    return scale_out, m_in * m_in, (prod / q + w.noise.rescale) / scale_out


def _folded(w: _Walk, lay: StageLayout, prod: float, blocks: int, steps: list[int], ks: float, ks_out: float,
            q: int) -> float:
    """Error (message units, after the rescale by ``q``) of a product ``prod`` whose ``blocks`` row blocks
    are folded by rotations of ``steps``: after the rescale, or before it under :func:`~.layout.fold_first`
    (the fold's key switches then shrink by q, and the rescale's noise enters once, not once per block)."""
    if fold_first(w.opts):
        prod += (blocks - 1) * lay.switches(steps, worst=True) * ks
        return prod / q + w.noise.rescale + w.noise.rounding
    fold_ks = lay.switches(steps, worst=True) * ks_out
    return prod / q + blocks * w.noise.rescale + (blocks - 1) * fold_ks + w.noise.rounding


def _affine_error(w: _Walk, st: Stage, lay: StageLayout, m_in: float, ks: float, q: int,
                  s_pt: float, spread: float = 1.0) -> float:
    """Error (message units, after the rescale by ``q``) of ``A x + b`` in the stage's layout.

    ``spread``: how far the sum before the bias can exceed the output (:attr:`~.stages.Stage.pre_bias`);
    the FFT's relative error applies to that larger message.
    """
    noise, e_in = w.noise, w.err * w.scale
    target = w.target * spread
    ks_out = noise.key_switch(len(w.level), float(max(w.level)), w.special)
    if lay.gather is not None:  # a hybrid product over the client's chunks (seal/gather.py)
        gather = lay.gather
        blocks, diag = gather.slots // gather.period, gather.bsgs
        e_in_rot = e_in + lay.switches([b for b in diag.baby_steps if b], worst=True) * ks
        giant_ks = lay.switches([k * diag.baby for k in diag.giant_steps if k]) * ks
        per_block = gather.plaintexts * (m_in * noise.rounding + FFT_REL * q * target) + giant_ks
        prod = st.row_l1 * s_pt * e_in_rot + blocks * per_block
        return _folded(w, lay, prod, blocks, gather.fold_steps, ks, ks_out, q)
    if lay.bsgs is not None:
        bsgs = lay.bsgs
        baby = [] if lay.client_baby else [b for b in bsgs.baby_steps if b]
        e_in_rot = e_in + lay.switches(baby, worst=True) * ks  # each rotated copy: its own key switches
        giant_ks = lay.switches([k * bsgs.baby for k in bsgs.giant_steps if k]) * ks
        per_block = bsgs.width * m_in * noise.rounding + giant_ks + bsgs.width * FFT_REL * q * target
        prod = st.row_l1 * s_pt * e_in_rot + bsgs.blocks * per_block
        return _folded(w, lay, prod, bsgs.blocks, bsgs.fold_steps, ks, ks_out, q)
    prod = st.row_l1 * s_pt * e_in + st.row_nnz * m_in * 0.5 + FFT_REL * q * target
    return prod / q + noise.rescale + 0.5


def _rescaled(w: _Walk, st: Stage, lay: StageLayout) -> StagePlan:
    """A SQUARE, or an AFFINE stage whose weights are encoded at ``q·Δ_out/Δ_in``: one rescale by q."""
    if len(w.level) < 2:
        raise ParameterError("the chain ran out of primes (internal planning error)")
    start = tuple(w.level)
    ks = w.noise.key_switch(len(w.level), float(max(w.level)), w.special)
    m_in = w.scale * float(np.max(st.in_bound))
    if st.square_shift is not None:  # (x + s)**2: the encoded shift rounds like a bias
        m_in = w.scale * float(np.max(st.in_bound + np.abs(st.square_shift)))
        w.err = w.err + ((w.noise.rounding if w.latency else 0.5) + FFT_REL * m_in) / w.scale
    q = w.level.pop()
    if st.kind is StageKind.SQUARE:
        scale_out, msg, w.err = _square(w, st, m_in, ks, q)
        plan = StagePlan(st, start, q, w.scale, scale_out, 0.0, msg, w.err)
    else:
        scale_out = w.target / max(st.partial, 1.0)
        s_pt = q * scale_out / w.scale
        spread = max(1.0, st.pre_bias / max(st.partial, 1.0))  # the sum before the bias, against the output
        w.err = _affine_error(w, st, lay, m_in, ks, q, s_pt, spread) / scale_out
        msg = q * w.target * spread
        if spread > 1.0:
            w.check(f"stage {st.names} after its rescale, before its bias", msg / q, math.prod(w.level))
        plan = StagePlan(st, start, q, w.scale, scale_out, s_pt, msg, w.err, lay.bsgs, None, lay.gather)
    w.check(f"stage {st.names} before its rescale", msg, math.prod(start))
    w.scale = scale_out
    return plan


def _poly_powers(w: _Walk, st: Stage, start: tuple[int, ...], m: float, terms: tuple[int, ...],
                 ) -> tuple[dict[int, float], dict[int, float], list[tuple[int, int, int, int, int, float]], float]:
    """Scales, errors and products of the powers x**i a POLY stage builds; the largest message."""
    noise = w.noise
    scales: dict[int, float] = {1: w.scale}
    errors: dict[int, float] = {1: w.err}
    products = []
    msg_top = w.scale * m
    for i in powers_needed(list(terms)):
        a, b = power_split(i)
        n_primes = len(start) - power_depth(a)
        lv = start[:n_primes]
        q = lv[-1]
        ks = noise.key_switch(n_primes, float(max(lv)), w.special)
        s_prod = scales[a] * scales[b]
        msg = s_prod * m**a * m**b
        e_int = m**a * errors[b] + m**b * errors[a] + errors[a] * errors[b]
        e_msg = s_prod * e_int + ks + FFT_REL * msg
        scales[i] = s_prod / q
        errors[i] = (e_msg / q + noise.rescale) / scales[i]
        products.append((i, a, b, n_primes, q, scales[i]))
        msg_top = max(msg_top, msg)
        w.check(f"stage {st.names}: x**{i} before its rescale", msg, math.prod(lv))
        w.check(f"stage {st.names}: x**{i}", msg / q, math.prod(lv[:-1]))
    return scales, errors, products, msg_top


def _poly(w: _Walk, st: Stage, period: int) -> StagePlan:
    """Scales, levels and error of a POLY stage ``sum_i A_i x^i`` (see :mod:`~.params`).

    Errors in integer units: a product x^a·x^b of values with errors e_a, e_b
    has error ``m^a e_b + m^b e_a + e_a e_b`` (products amplify input error:
    e_i grows like i·m^(i-1)·e_1), plus relinearization, FFT and rescale noise
    divided by its scale.  The combination adds ``max_j sum_i |A_ij| e_i``,
    the rounding of each encoded A_i times the message of x^i, the rescale and
    the rounding of A_0.
    """
    if st.coeffs is None:
        raise ParameterError("internal: POLY stage without coefficients")
    start = tuple(w.level)
    if len(start) < st.levels + 1:
        raise ParameterError("the chain ran out of primes (internal planning error)")
    m = float(np.max(st.in_bound)) if st.in_bound.size else 0.0
    absc = np.abs(st.coeffs).astype(np.float64)  # (d+1, n)
    terms = tuple(i for i in range(1, st.degree + 1) if np.any(absc[i]))
    scales, errors, products, msg_top = _poly_powers(w, st, start, m, terms)
    n_coeff = len(start) - power_depth(st.degree)
    lv = start[:n_coeff]
    q, p_out = lv[-1], max(st.partial, 1.0)
    term_scale = q * (w.target / p_out)
    scale_out = term_scale / q  # as SEAL divides on rescale
    plain_scales = {i: term_scale / scales[i] for i in terms}
    r_pt = w.noise.rounding if w.latency else 0.5  # vector encoding / scalar constant rounding
    propagated = float(np.max(sum((absc[i] * errors[i] for i in terms), np.zeros(st.n_in)))) if terms else 0.0
    encode = sum(r_pt * scales[i] * m**i + FFT_REL * term_scale * float(np.max(absc[i])) * m**i for i in terms)
    e_msg = term_scale * propagated + encode
    a0_max = float(np.max(absc[0])) if absc.shape[1] else 0.0
    e_int = ((e_msg / q + w.noise.rescale + r_pt) / scale_out + (POLY_SCALE_REL + FFT_REL) * p_out
             + (DOUBLE_REL * a0_max if a0_max >= 2.0**53 else 0.0))
    for i in terms:
        if float(np.max(absc[i])) * plain_scales[i] >= math.prod(lv) / 2:
            w.problems.append(f"stage {st.names}: A_{i} encoded at scale 2**{math.log2(plain_scales[i]):.1f} "
                              f"reaches the modulus 2**{math.log2(math.prod(lv)):.1f}/2")
    msg = term_scale * p_out
    w.check(f"stage {st.names}: terms before their rescale", msg, math.prod(lv))
    poly = PolyPlan(tuple(products), scales, errors, terms, n_coeff, term_scale, plain_scales, period)
    w.level, w.scale, w.err = list(start[:n_coeff - 1]), scale_out, e_int
    return StagePlan(st, start, q, scales[1], scale_out, 0.0, max(msg_top, msg), e_int, None, poly)


def propagate(stages: list[Stage], opts: CKKSOptions, n: int, primes: list[int], w: int,
              layouts: list[StageLayout], free: Free = Free.NONE,
              roundings: bool = True, segments: bool = False) -> tuple[list[StagePlan], float, list[str]]:
    """Scales, message bounds and errors of every stage for one candidate chain.

    With ``free`` FIRST or ALL (THROUGHPUT), the first (or every) affine stage
    multiplies by its integer weights encoded at scale 1: exact, no rescale, no
    level.  Under FIRST the input is encrypted at Δ0 = 2**w / P_1 so that the
    first stage's results stay below 2**w; under ALL at Δ0 = 2**w / P_in, and
    the chain's primes are sized for the messages that follow
    (:func:`~.chain.free_chain_bits`).

    With ``opts.complex_packing`` in THROUGHPUT and the first stage free, the
    inputs carry two features per slot at half the scale (:mod:`~.pairs`): the
    fresh error counts twice, and the first stage adds one key switch.

    With ``roundings`` (the default), the error of a stage that folds requantize
    ops includes the roundings CKKS skips (``Stage.rounding``), carried like noise
    from there: the error is then the distance from ``qm.forward_int``.  Without,
    it is CKKS's own distance from the exact real-valued circuit (what the
    precision target constrains).  With ``segments``, the error restarts from
    zero after every stage that folds requantize ops: each stage's error is then
    what CKKS adds since the last requantize (the segment's own noise).

    Returns:
        The stage plans, the final error bound (integer units) and the problems
        (messages that would wrap around); the chain is usable when there is none.
    """
    noise = NoiseModel(n)
    target = 2.0**w
    p_in = float(np.max(stages[0].in_bound)) if stages else 1.0
    free_first = free is not Free.NONE and bool(stages) and stages[0].weighted
    scale = target / max(stages[0].partial if free is Free.FIRST and free_first else p_in, 1.0)
    pairs = paired(opts, free_first)  # two features per slot, encoded at scale/2 (:mod:`~.pairs`)
    err = (noise.fresh + noise.rounding + FFT_REL * target) / scale * (2 if pairs else 1)  # integer units
    walk = _Walk(noise, opts, primes[-1], target, scale, err, list(primes[:-1]))
    plans: list[StagePlan] = []
    for i, (st, lay) in enumerate(zip(stages, layouts)):
        if st.shift:
            plan = _shift(walk, st)
        elif st.weighted and ((free_first and i == 0) or free is Free.ALL):
            plan = _free_affine(walk, st)
            if pairs and i == 0:  # y + conj(y): 2·Re of the doubled error above, plus one key switch
                walk.err += noise.key_switch(len(walk.level), float(max(walk.level)), walk.special) / walk.scale
                plan = replace(plan, error_out=walk.err)
        elif st.kind is StageKind.POLY:
            plan = _poly(walk, st, lay.period)
        else:
            plan = _rescaled(walk, st, lay)
        if roundings and st.rounding:
            walk.err += st.rounding
            plan = replace(plan, error_out=walk.err)
        plans.append(plan)
        if segments and st.rounding:
            walk.err = 0.0
    out_bound = (stages[-1].partial if stages else p_in) + opts.noise_bound  # release noise widens the output
    walk.err += FFT_REL * out_bound  # decoding FFT in doubles
    if opts.noise_bound:  # the noise plaintext: coefficient rounding and the encoding FFT
        walk.err += noise.rounding / walk.scale + FFT_REL * opts.noise_bound
    if opts.circuit_privacy is not CircuitPrivacy.OFF:  # a fresh public-key encryption of zero
        walk.err += noise.fresh / walk.scale
    if opts.circuit_privacy is CircuitPrivacy.FLOOD:  # Gaussian flooding sized by this bound
        walk.err *= 1.0 + ckks_flood_error_factor(opts.flood_security_bits, opts.flood_queries)
    walk.check("the decrypted output", walk.scale * (out_bound + walk.err), math.prod(walk.level))
    return plans, walk.err, walk.problems
