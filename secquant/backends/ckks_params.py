"""Choosing CKKS parameters from the model's bounds, and the error bound they give.

Every ciphertext holds the *integer* values of one layer at a scale Δ chosen so
that the largest value any partial sum can reach, ``P`` (from the bounds), has
message ``Δ·P <= 2**w``:

* the input is encrypted at Δ0 = 2**w / P_in;
* an affine stage multiplies by ``A`` encoded at scale ``s = q·Δ_out/Δ_in``
  and rescales by the prime q, so the new scale is exactly Δ_out = 2**w / P_out
  (SEAL keeps the true scale; nothing is reset to a nominal one);
* a square gives scale Δ_in²/q, and with every middle prime q > 2**w the
  message stays below 2**w;
* a polynomial ``sum_i A_i x^i`` builds x^i = x^a · x^(i-a) (a the largest
  power of two below i) by ciphertext products, each rescaled (scale
  S_a·S_b/q, message below 2**w as for a square), brings every power to the
  deepest level, multiplies x^i by A_i encoded at ``q·Δ_out/S_i`` so every term
  lands on the scale ``q·Δ_out``, sums, rescales once to Δ_out = 2**w / P_out
  (P_out = sum_i |A_i| m^i bounds every term and partial sum) and adds A_0.

The chain is ``[q0, q_1..q_L, P]`` with L the number of rescales (a POLY stage has several),
middle primes of B = w + 1 bits and q0, P of B + 1 bits, so the last message
(< 2**w plus the error) is below q0/2 by a factor two: no value ever wraps
around q0, which is how TenSEAL's tutorial parameters corrupt large logits.
B is as large as the 128-bit table allows for N (at most 59); N is the
smallest degree whose error bound meets the precision target.

Errors are propagated stage by stage with :class:`~.ckks_noise.NoiseModel`
and stated in output-integer units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.ckks_chain import INPUT_EXTRA_BITS, Free, free_chain_bits
from secquant.backends.seal.context import coeff_primes
from secquant.backends.seal.layout import BSGSLayout, GatherLayout, dense_bsgs, next_pow2
from secquant.backends.ckks_noise import FFT_REL, NoiseModel
from secquant.backends.ckks_stages import Stage, StageKind, power_depth, power_split, powers_needed
from secquant.backends.seal.security import estimate_security, max_coeff_modulus_bits
from secquant.errors import ConfigError, ParameterError

__all__ = ["CKKSPlan", "PlanOptions", "PolyPlan", "StagePlan", "make_plan"]

DEGREES = (4096, 8192, 16384, 32768)
MAX_PRIME_BITS = 60
MIN_SCALE_BITS = 20


@dataclass(frozen=True)
class PlanOptions:
    """User choices; everything else is derived.

    Attributes:
        mode: LATENCY or THROUGHPUT.
        security: 128 (default), 192 or 256 bits.
        precision_bits: Target: the error bound must be at most
            2**-precision_bits of the reference output magnitude (the largest
            |output| seen on calibration data, else the proven bound).
        poly_degree: Force N (else the smallest that meets the target).
        scale_bits: Force B, the bit size of the middle primes (w = B - 1).
        client_gather: LATENCY: when the first stage is sparse (a convolution), the
            client packs its inputs by the stage's sparsity pattern
            (:class:`~.ckks_layout.GatherLayout`) if that needs at most
            ``MAX_GATHER_CHUNKS`` ciphertexts and no more server rotations than
            baby-step giant-step.
        client_rotations: LATENCY: the client encrypts the baby-step rotations
            of its input (b1 ciphertexts instead of one), so the server makes
            no rotation at the top level, where rotations cost the most.
    """

    mode: Mode = Mode.LATENCY
    security: int = 128
    precision_bits: float = 12.0
    poly_degree: int | None = None
    scale_bits: int | None = None
    client_rotations: bool = True
    client_gather: bool = True

    def __post_init__(self) -> None:
        from secquant.quant.primitives import coerce_enum

        object.__setattr__(self, "mode", coerce_enum(self.mode, Mode, "mode"))
        if self.security not in (128, 192, 256):
            raise ConfigError(
                f"security must be 128, 192 or 256 bits, got {self.security!r}; secquant does not build "
                "CKKS parameters below 128-bit security (SEAL refuses them too)"
            )
        if not (isinstance(self.precision_bits, (int, float)) and 0 <= self.precision_bits <= 50):
            raise ConfigError(f"precision_bits must lie in [0, 50], got {self.precision_bits!r}")
        if self.poly_degree is not None and self.poly_degree not in DEGREES:
            raise ConfigError(f"poly_degree must be one of {DEGREES}, got {self.poly_degree!r}")
        for name in ("client_rotations", "client_gather"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.scale_bits is not None and not (MIN_SCALE_BITS <= self.scale_bits <= MAX_PRIME_BITS - 1):
            raise ConfigError(f"scale_bits must lie in [{MIN_SCALE_BITS}, {MAX_PRIME_BITS - 1}], got {self.scale_bits!r}")


@dataclass(frozen=True, eq=False)
class PolyPlan:
    """How a POLY stage builds its powers and combines its terms.

    Attributes:
        products: ``(i, a, b, n_primes, prime, scale)`` per power x**i >= 2 in
            build order: x**a · x**b at the level of ``n_primes`` primes, rescaled
            by ``prime`` to ``scale`` (SEAL's own double arithmetic).
        power_scales: Scale S_i of x**i, keyed by i (1: the stage's input).
        power_errors: Error bound of x**i in integer units, keyed by i.
        terms: Powers i >= 1 whose coefficient is not all zero.
        coeff_primes: Primes when the coefficients multiply (the deepest power's level).
        term_scale: ``q·Δ_out``, the scale every term A_i·x**i is brought to.
        plain_scales: Scale of the encoded A_i, ``term_scale / S_i``, keyed by i.
        period: LATENCY slot period of the values (coefficients are tiled with it).
    """

    products: tuple[tuple[int, int, int, int, int, float], ...]
    power_scales: dict[int, float]
    power_errors: dict[int, float]
    terms: tuple[int, ...]
    coeff_primes: int
    term_scale: float
    plain_scales: dict[int, float]
    period: int


@dataclass(frozen=True, eq=False)
class StagePlan:
    """A stage with its level, scales and error.

    Attributes:
        stage: The stage.
        level_primes: Primes of the ciphertext modulus when the stage starts.
        prime: The prime its rescale drops (0 for SHIFT).
        scale_in, scale_out: Δ before and after (exact as SEAL computes them).
        plain_scale: Scale of the encoded weights (AFFINE), else 0.
        message_bound: Largest message |Δ·value| the stage forms before its rescale.
        error_out: Error bound after the stage, in integer units.
        layout: Diagonal layout (LATENCY AFFINE stages), else None.
        poly: Powers and term scales (POLY stages), else None.
        gather: Client-gathered layout (LATENCY, a sparse first stage), else None.
    """

    stage: Stage
    level_primes: tuple[int, ...]
    prime: int
    scale_in: float
    scale_out: float
    plain_scale: float
    message_bound: float
    error_out: float
    layout: BSGSLayout | None = None
    poly: PolyPlan | None = None
    gather: GatherLayout | None = None

    @property
    def levels(self) -> int:
        """Primes this stage drops (0 for SHIFT and the free first stage)."""
        if self.poly is not None:
            return self.stage.levels
        return 1 if self.prime else 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = {**self.stage.summary(), "primes_at_start": len(self.level_primes),
             "log2_scale_in": round(math.log2(self.scale_in), 3), "log2_scale_out": round(math.log2(self.scale_out), 3),
             "log2_message_bound": round(math.log2(max(self.message_bound, 1.0)), 3),
             "error_bound_int": self.error_out}
        if self.layout is not None:
            d["layout"] = {"n_in_pad": self.layout.period, "n_out_pad": self.layout.width,
                           "baby": self.layout.baby, "giant": self.layout.giant, "rotations": self.layout.rotations}
        if self.gather is not None:
            d["gather"] = {"period": self.gather.period, "inputs_per_output": int(self.gather.cols.shape[1]),
                           "client_ciphertexts": self.gather.chunks, "rotations": len(self.gather.fold_steps)}
        if self.poly is not None:
            d["levels"] = self.levels
            d["ciphertext_products"] = len(self.poly.products)
            d["power_error_bounds_int"] = {str(i): e for i, e in sorted(self.poly.power_errors.items())}
        return d


@dataclass(frozen=True, eq=False)
class CKKSPlan:
    """Every parameter of a CKKS compilation, fixed before any key exists.

    Attributes:
        options: What the user asked for.
        poly_degree: N.
        primes: Coefficient modulus, q0 first, the special prime last.
        scale_bits: B (w = B - 1).
        input_scale: Δ0.
        input_period: Slot period of the input (LATENCY).
        stages: Per-stage plans.
        max_abs_error: Error bound of the decoded outputs before rounding, integer units.
        reference_magnitude: The output magnitude the precision target refers to.
        output_bound: Proven bound on |output|.
        galois_steps: Rotation steps the server needs (empty in THROUGHPUT).
    """

    options: PlanOptions
    poly_degree: int
    primes: tuple[int, ...]
    scale_bits: int
    input_scale: float
    input_period: int
    stages: tuple[StagePlan, ...]
    max_abs_error: float
    reference_magnitude: float
    output_bound: float
    galois_steps: tuple[int, ...] = field(default_factory=tuple)

    @property
    def slots(self) -> int:
        """N/2."""
        return self.poly_degree // 2

    @property
    def input_copies(self) -> int:
        """Ciphertexts per input in LATENCY mode (the client's baby-step rotations)."""
        first = self.stages[0] if self.stages else None
        if first is not None and first.gather is not None:
            return first.gather.chunks
        if (self.options.mode is Mode.LATENCY and self.options.client_rotations and first is not None
                and first.layout is not None):
            return first.layout.baby
        return 1

    @property
    def depth(self) -> int:
        """Rescales along the circuit (primes consumed)."""
        return sum(s.levels for s in self.stages)

    @property
    def bit_sizes(self) -> list[int]:
        """Bit size of every prime."""
        return [p.bit_length() for p in self.primes]

    @property
    def total_bits(self) -> int:
        """log2 of the whole coefficient modulus (what the security table limits)."""
        return sum(self.bit_sizes)

    @property
    def max_abs_error_int(self) -> int:
        """Bound on |round(decoded) - exact| for every output integer."""
        return int(math.floor(self.max_abs_error + 0.5))

    @property
    def output_scale(self) -> float:
        """Δ of the result."""
        return self.stages[-1].scale_out if self.stages else self.input_scale

    def sizes(self) -> dict[str, int]:
        """Uncompressed sizes of keys and ciphertexts (8 bytes per coefficient per prime).

        SEAL's zstd and the seeded (secret-key) encryption make the wire smaller:
        fresh inputs and keys travel at about half these sizes.
        """
        n, k_all = self.poly_degree, len(self.primes)
        k_data = k_all - 1
        k_out = k_data - self.depth
        switch_key = k_data * 2 * k_all * n * 8
        per_input = self.input_copies if self.options.mode is Mode.LATENCY else 1
        return {
            "fresh_ciphertext": 2 * n * k_data * 8,
            "output_ciphertext": 2 * n * k_out * 8,
            "public_key": 2 * n * k_all * 8,
            "relin_keys": switch_key,
            "galois_keys": switch_key * len(self.galois_steps),
            "request_ciphertexts_per_input" if self.options.mode is Mode.LATENCY else "request_ciphertexts_per_batch":
                per_input if self.options.mode is Mode.LATENCY else (self.stages[0].stage.n_in if self.stages else 0),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of every choice."""
        n_rot = sum(s.layout.rotations for s in self.stages if s.layout is not None) + sum(
            len(s.gather.fold_steps) for s in self.stages if s.gather is not None)
        if self.input_copies > 1 and self.stages[0].layout is not None:
            n_rot -= self.input_copies - 1  # the client's baby steps
        return {
            "scheme": "ckks",
            "mode": self.options.mode.value,
            "poly_degree": self.poly_degree,
            "slots": self.slots,
            "coeff_modulus_bits": self.bit_sizes,
            "coeff_modulus_total_bits": self.total_bits,
            "primes": [str(p) for p in self.primes],
            "scale_bits": self.scale_bits,
            "log2_input_scale": math.log2(self.input_scale),
            "log2_output_scale": math.log2(self.output_scale),
            "depth": self.depth,
            "security_bits": estimate_security(self.poly_degree, self.total_bits),
            "security_requested": self.options.security,
            "precision_bits_target": self.options.precision_bits,
            "max_abs_error": self.max_abs_error,
            "max_abs_error_int": self.max_abs_error_int,
            "error_unit": "output integers (qm.forward_int units); divide by qm.output_scale for scores",
            "relative_error_bound": self.max_abs_error / max(self.reference_magnitude, 1.0),
            "reference_output_magnitude": self.reference_magnitude,
            "output_bound": self.output_bound,
            "q0_headroom_bits": math.log2(self.primes[0] / 2) - math.log2(
                self.output_scale * self.output_bound + self.output_scale * self.max_abs_error),
            "galois_steps": list(self.galois_steps),
            "input_ciphertexts_per_input": self.input_copies if self.options.mode is Mode.LATENCY else None,
            "rotations_per_input": n_rot,
            "packing": ("one input per ciphertext, replicated over slots; hybrid diagonal BSGS matmul"
                        + ("; first stage gathered by the client (sparsity pattern only)"
                           if self.stages and self.stages[0].gather is not None else "")
                        if self.options.mode is Mode.LATENCY else
                        "inputs across slots, one ciphertext per feature (CryptoNets)"),
            "stages": [s.summary() for s in self.stages],
            "sizes_bytes_uncompressed": self.sizes(),
            "error_model": "Cheon-Kim-Kim-Song 2017 Lemmas 1-3, six-sigma canonical-embedding bounds (sigma=3.2, ternary secret)",
        }


def _check_message(what: str, message: float, modulus: int) -> str | None:
    if message >= modulus / 2:
        return (f"{what}: message up to 2**{math.log2(message):.2f} reaches the modulus 2**{math.log2(modulus):.2f}/2 "
                "and would wrap around")
    return None


#: Most ciphertexts a client sends per input for a gathered first stage.
MAX_GATHER_CHUNKS = 4


def _gather_for(st: Stage, opts: PlanOptions, n: int, period: int) -> GatherLayout | None:
    """The gathered layout of a LATENCY first stage, when it is allowed and rotates less than BSGS."""
    if opts.mode is not Mode.LATENCY or not opts.client_gather or st.kind is not StageKind.AFFINE or st.matrix is None:
        return None
    if next_pow2(st.n_out) > n // 2:
        return None
    gather = GatherLayout.of(st.matrix, n // 2)
    if gather.chunks > MAX_GATHER_CHUNKS:
        return None
    bsgs = dense_bsgs(st.n_in, st.n_out, period)
    server_rotations = bsgs.rotations - ((bsgs.baby - 1) if opts.client_rotations else 0)
    return gather if len(gather.fold_steps) <= server_rotations else None


def _propagate(stages: list[Stage], opts: PlanOptions, n: int, primes: list[int], w: int,
               input_period: int, free: Free = Free.NONE) -> tuple[list[StagePlan], float, list[str]]:
    """Scales, message bounds and errors of every stage for one candidate chain.

    With ``free`` FIRST or ALL (THROUGHPUT), the first (or every) affine stage
    multiplies by its integer weights encoded at scale 1: exact, no rescale, no
    level.  Under FIRST the input is encrypted at Δ0 = 2**w / P_1 so that the
    first stage's results stay below 2**w; under ALL at Δ0 = 2**w / P_in, and
    the chain's primes are sized for the messages that follow
    (:func:`~.ckks_chain.free_chain_bits`).
    """
    noise = NoiseModel(n)
    special = primes[-1]
    data = primes[:-1]
    target = 2.0**w
    p_in = float(np.max(stages[0].in_bound)) if stages else 1.0
    free_first = free is not Free.NONE and stages[0].kind is StageKind.AFFINE
    scale = target / max(stages[0].partial if free is Free.FIRST and free_first else p_in, 1.0)
    err = (noise.fresh + noise.rounding + FFT_REL * target) / scale  # integer units
    level = list(data)
    period = input_period
    problems: list[str] = []
    plans: list[StagePlan] = []
    for st in stages:
        q_max = float(max(level))
        ks = noise.key_switch(len(level), q_max, special)
        m_in = scale * float(np.max(st.in_bound))
        start = tuple(level)
        if st.kind is StageKind.SHIFT:
            msg = scale * st.partial
            err = err + (noise.rounding if opts.mode is Mode.LATENCY else 0.5) / scale
            problems += filter(None, [_check_message(f"stage {st.names}", msg, math.prod(level))])
            plans.append(StagePlan(st, start, 0, scale, scale, 0.0, msg, err))
            continue
        if st.kind is StageKind.AFFINE and ((free_first and not plans) or free is Free.ALL):
            msg = scale * st.partial
            err = st.row_l1 * err + 0.5 / scale
            problems += filter(None, [_check_message(f"stage {st.names}", msg, math.prod(level))])
            plans.append(StagePlan(st, start, 0, scale, scale, 1.0, msg, err))
            continue
        if st.kind is StageKind.POLY:
            sp, level, poly_problems = _plan_poly(st, opts, noise, level, special, scale, err, target, period)
            problems += poly_problems
            plans.append(sp)
            err, scale = sp.error_out, sp.scale_out
            continue
        if len(level) < 2:
            raise ParameterError("the chain ran out of primes (internal planning error)")
        q = level.pop()
        ks_out = noise.key_switch(len(level), float(max(level)), special)
        if st.kind is StageKind.SQUARE:
            scale_out = scale * scale / q
            e_msg = err * scale  # message units
            prod = 2 * m_in * e_msg + e_msg * e_msg + ks + FFT_REL * m_in * m_in
            err = (prod / q + noise.rescale) / scale_out
            msg = m_in * m_in
            plans.append(StagePlan(st, start, q, scale, scale_out, 0.0, msg, err))
        else:
            scale_out = target / max(st.partial, 1.0)
            s_pt = q * scale_out / scale
            e_in = err * scale
            layout = None
            gather = _gather_for(st, opts, n, period) if not plans else None
            if gather is not None:
                period = gather.period
                blocks = gather.blocks
                prod = (st.row_l1 * s_pt * e_in + gather.chunks * blocks * (m_in * noise.rounding
                                                                            + FFT_REL * q * target))
                e_out = prod / q + blocks * noise.rescale + (blocks - 1) * ks_out + noise.rounding
            elif opts.mode is Mode.LATENCY:
                layout = dense_bsgs(st.n_in, st.n_out, period)
                period = layout.width
                client_baby = opts.client_rotations and not plans
                e_in_rot = e_in + (ks if layout.baby > 1 and not client_baby else 0.0)
                per_block = (layout.width * m_in * noise.rounding + (layout.giant - 1) * ks
                             + layout.width * FFT_REL * q * target)
                prod = st.row_l1 * s_pt * e_in_rot + layout.blocks * per_block
                e_out = prod / q + layout.blocks * noise.rescale + (layout.blocks - 1) * ks_out + noise.rounding
            else:
                prod = st.row_l1 * s_pt * e_in + st.row_nnz * m_in * 0.5 + FFT_REL * q * target
                e_out = prod / q + noise.rescale + 0.5
            err = e_out / scale_out
            msg = q * target
            plans.append(StagePlan(st, start, q, scale, scale_out, s_pt, msg, err, layout, None, gather))
        problems += filter(None, [_check_message(f"stage {st.names} before its rescale", msg, math.prod(start))])
        scale = plans[-1].scale_out
    out_bound = stages[-1].partial if stages else p_in
    err += FFT_REL * out_bound  # decoding FFT in doubles
    final = scale * (out_bound + err)
    problem = _check_message("the decrypted output", final, math.prod(level))
    if problem:
        problems.append(problem)
    return plans, err, problems


#: Relative scale mismatch allowed between the terms of a POLY stage before they are summed: SEAL
#: computes S_i·s_i in doubles, so each term's scale is q·Δ_out within a few ulps; the evaluator sets
#: them equal (SEAL adds only equal scales) and the error bound charges this relative amount.
POLY_SCALE_REL = 2.0**-48
#: Relative error of a double (a coefficient A_0 past 2**53 is rounded when encoded).
DOUBLE_REL = 2.0**-53


def _plan_poly(st: Stage, opts: PlanOptions, noise: NoiseModel, level: list[int], special: int, scale: float,
               err: float, target: float, period: int) -> tuple[StagePlan, list[int], list[str]]:
    """Scales, levels and error of a POLY stage ``sum_i A_i x^i`` (see the module docstring).

    Errors in integer units: a product x^a·x^b of values with errors e_a, e_b
    has error ``m^a e_b + m^b e_a + e_a e_b`` (products amplify input error:
    e_i grows like i·m^(i-1)·e_1), plus relinearization, FFT and rescale noise
    divided by its scale.  The combination adds ``max_j sum_i |A_ij| e_i``,
    the rounding of each encoded A_i times the message of x^i, the rescale and
    the rounding of A_0.
    """
    if st.coeffs is None:
        raise ParameterError("internal: POLY stage without coefficients")
    latency = opts.mode is Mode.LATENCY
    start = tuple(level)
    m = float(np.max(st.in_bound)) if st.in_bound.size else 0.0
    absc = np.abs(st.coeffs).astype(np.float64)  # (d+1, n)
    degree = st.degree
    terms = tuple(i for i in range(1, degree + 1) if np.any(absc[i]))
    if len(start) < st.levels + 1:
        raise ParameterError("the chain ran out of primes (internal planning error)")
    problems: list[str] = []
    scales: dict[int, float] = {1: scale}
    errors: dict[int, float] = {1: err}
    products = []
    msg_top = scale * m
    for i in powers_needed(list(terms)):
        a, b = power_split(i)
        n_primes = len(start) - power_depth(a)
        lv = start[:n_primes]
        q = lv[-1]
        ks = noise.key_switch(n_primes, float(max(lv)), special)
        s_prod = scales[a] * scales[b]
        msg = s_prod * m**a * m**b
        e_int = m**a * errors[b] + m**b * errors[a] + errors[a] * errors[b]
        e_msg = s_prod * e_int + ks + FFT_REL * msg
        scales[i] = s_prod / q
        errors[i] = (e_msg / q + noise.rescale) / scales[i]
        products.append((i, a, b, n_primes, q, scales[i]))
        msg_top = max(msg_top, msg)
        problems += filter(None, [_check_message(f"stage {st.names}: x**{i} before its rescale", msg,
                                                 math.prod(lv)),
                                  _check_message(f"stage {st.names}: x**{i}", msg / q, math.prod(lv[:-1]))])
    n_coeff = len(start) - power_depth(degree)
    lv = start[:n_coeff]
    q = lv[-1]
    p_out = max(st.partial, 1.0)
    term_scale = q * (target / p_out)
    scale_out = term_scale / q  # as SEAL divides on rescale
    plain_scales = {i: term_scale / scales[i] for i in terms}
    r_pt = noise.rounding if latency else 0.5  # vector encoding / scalar constant rounding
    propagated = float(np.max(sum((absc[i] * errors[i] for i in terms), np.zeros(st.n_in)))) if terms else 0.0
    encode = sum(r_pt * scales[i] * m**i + FFT_REL * term_scale * float(np.max(absc[i])) * m**i for i in terms)
    e_msg = term_scale * propagated + encode
    a0_max = float(np.max(absc[0])) if absc.shape[1] else 0.0
    e_int = ((e_msg / q + noise.rescale + r_pt) / scale_out + (POLY_SCALE_REL + FFT_REL) * p_out
             + (DOUBLE_REL * a0_max if a0_max >= 2.0**53 else 0.0))
    for i in terms:
        encoded = float(np.max(absc[i])) * plain_scales[i]
        if encoded >= math.prod(lv) / 2:
            problems.append(f"stage {st.names}: A_{i} encoded at scale 2**{math.log2(plain_scales[i]):.1f} "
                            f"reaches the modulus 2**{math.log2(math.prod(lv)):.1f}/2")
    msg = term_scale * p_out
    msg_top = max(msg_top, msg)
    problems += filter(None, [_check_message(f"stage {st.names}: terms before their rescale", msg, math.prod(lv))])
    poly = PolyPlan(tuple(products), scales, errors, terms, n_coeff, term_scale, plain_scales, period)
    sp = StagePlan(st, start, q, scale, scale_out, 0.0, msg_top, e_int, None, poly)
    return sp, list(start[:n_coeff - 1]), problems


def _reference(qm_observed: int | None, output_bound: float) -> float:
    if qm_observed:
        return float(qm_observed)
    return output_bound


def _candidates(stages: list[Stage], opts: PlanOptions, n: int,
                reasons: list[str]) -> list[tuple[str, list[int], int, Free]]:
    """Chains to try at degree ``n``: ``(label, prime bit sizes, w, Free)``.

    Uniform chains (middle primes of B bits, every affine stage rescaled, or
    the first one free in THROUGHPUT) and, in THROUGHPUT, chains in which no
    affine stage costs a level (:func:`~.ckks_chain.free_chain_bits`) for
    every message floor that fits the security budget.
    """
    budget = max_coeff_modulus_bits(n, opts.security)
    out: list[tuple[str, list[int], int, Free]] = []
    throughput = opts.mode is Mode.THROUGHPUT
    frees = (Free.FIRST, Free.NONE) if throughput and stages[0].kind is StageKind.AFFINE else (Free.NONE,)
    for free in frees:
        depth = sum(s.levels for s in stages) - (1 if free is Free.FIRST else 0)
        b_max = min(MAX_PRIME_BITS - 1, (budget - 2) // (depth + 2))
        b = opts.scale_bits if opts.scale_bits is not None else b_max
        if b > b_max:
            reasons.append(f"N={n}: {depth + 2} primes of {b} bits exceed the {budget}-bit limit at "
                           f"{opts.security}-bit security")
        elif b < MIN_SCALE_BITS:
            reasons.append(f"N={n}: depth {depth} leaves only {b}-bit primes at {opts.security}-bit security")
        else:
            label = f"N={n}, B={b}" + (", first stage at scale 1" if free is Free.FIRST else "")
            out.append((label, [b + 1] + [b] * depth + [b + 1], b - 1, free))
    if throughput and opts.scale_bits is None:
        for w in range(MAX_PRIME_BITS - 1, MIN_SCALE_BITS - 1, -1):
            bits = free_chain_bits(stages, w)
            if bits is not None and sum(bits) <= budget:
                out.append((f"N={n}, integer weights at scale 1, message floor 2**{w}", bits,
                            w + INPUT_EXTRA_BITS, Free.ALL))
    return out


def make_plan(stages: list[Stage], opts: PlanOptions, observed_output: int | None = None) -> CKKSPlan:
    """Choose N, the chain and the scales; compute the error bound.

    Args:
        stages: From :func:`~.ckks_stages.build_stages`.
        opts: User choices.
        observed_output: Largest |output| on calibration data (the precision reference).

    Raises:
        ParameterError: no N up to 32768 holds the depth at the requested
            security, or none meets the precision target, or forced choices
            cannot hold the values.
    """
    if not stages:
        raise ParameterError("the model has no operations to evaluate")
    depth = sum(s.levels for s in stages)
    out_bound = stages[-1].partial
    reference = _reference(observed_output, out_bound)
    n_in = stages[0].n_in
    input_period = next_pow2(n_in)
    degrees = [opts.poly_degree] if opts.poly_degree else list(DEGREES)
    reasons: list[str] = []
    for n in degrees:
        if opts.mode is Mode.LATENCY:
            widest = max([input_period] + [max(next_pow2(s.n_in), next_pow2(s.n_out)) for s in stages])
            if widest > n // 2:
                reasons.append(f"N={n}: a layer needs {widest} slots, only {n // 2}")
                continue
        passing = []
        for label, bits, w, free in _candidates(stages, opts, n, reasons):
            primes = coeff_primes(n, bits)
            plans, err, problems = _propagate(stages, opts, n, primes, w, input_period, free)
            if problems:
                reasons.append(f"{label}: " + "; ".join(problems))
            elif err > reference * 2.0**-opts.precision_bits:
                reasons.append(f"{label}: error bound {err:.3g} exceeds 2**-{opts.precision_bits} of the "
                               f"reference output magnitude {reference:.3g}")
            else:
                passing.append((len(primes), err, primes, w, plans))
        if passing:
            _, err, primes, w, plans = min(passing, key=lambda c: (c[0], c[1]))
            steps: set[int] = set()
            for k, sp in enumerate(plans):
                if sp.gather is not None:
                    steps.update(sp.gather.fold_steps)
                if sp.layout is not None:
                    skip = set(range(1, sp.layout.baby)) if k == 0 and opts.client_rotations else set()
                    steps.update(set(sp.layout.steps) - skip)
            return CKKSPlan(opts, n, tuple(primes), w + 1, plans[0].scale_in if plans else 1.0, input_period,
                            tuple(plans), err, reference, out_bound, tuple(sorted(steps)))
    raise ParameterError(
        f"no CKKS parameters at {opts.security}-bit security evaluate this model (depth {depth}) within the "
        f"precision target: " + " | ".join(reasons[:12]) + (f" | ... ({len(reasons) - 12} more)" if len(reasons) > 12 else "")
        + ". Lower precision_bits, use fewer Square/Poly layers (or lower degrees), or quantize with fewer bits."
    )
