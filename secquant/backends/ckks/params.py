"""Choosing CKKS parameters from the model's bounds: ring degree, modulus chain, scales.

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

The uniform chain is ``[q0, q_1..q_L, P]`` with L the number of rescales (a
POLY stage has several), middle primes of B = w + 1 bits, q0 of B + 1 bits and
the special prime P of 60 (it divides the key-switching noise), so the last message (< 2**w plus the error) is below q0/2 by a factor
two: no value ever wraps around q0, which is how TenSEAL's tutorial parameters
corrupt large logits.  B is as large as the 128-bit table allows for N (at most
59); in THROUGHPUT, chains whose affine stages cost no level are tried too
(:mod:`~.chain`).  N is the smallest degree whose error bound (:mod:`~.noise`)
meets the precision target; among the chains that meet it, the fewest primes win.
The target applies to what CKKS adds to the exact real-valued circuit.  A
requantized model's stated bound adds the roundings CKKS skips (:mod:`~.fold`),
each carried through every later stage as noise is; they belong to the integer
model (they shrink as its ``target_bits`` grow), so the target does not
constrain them, and q0 grows (split into primes no larger than the special
prime) until it holds the output bound plus the stated bound.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.ckks.chain import INPUT_EXTRA_BITS, Free, free_chain_bits
from secquant.backends.ckks.layout import StageLayout, rotation_keys
from secquant.backends.ckks.noise import propagate
from secquant.backends.ckks.options import (
    DEGREES,
    MAX_PRIME_BITS,
    MIN_SCALE_BITS,
    CKKSOptions,
    Transfer,
)
from secquant.backends.ckks.pairs import paired
from secquant.backends.ckks.plan import CKKSPlan, StagePlan
from secquant.backends.ckks.stages import Stage
from secquant.backends.seal.context import coeff_primes
from secquant.backends.seal.galois import RotationKeys, switch_key_bytes
from secquant.backends.seal.layout import next_pow2
from secquant.backends.seal.security import max_coeff_modulus_bits
from secquant.errors import ParameterError

__all__ = ["Candidate", "candidates", "make_plan", "plan_cheapest"]

#: A chain to try: (label, prime bit sizes with q0 first and the special prime last, w, which stages are free).
Candidate = tuple[str, list[int], int, Free]


def _uniform(stages: list[Stage], opts: CKKSOptions, n: int, free: Free, reasons: list[str]) -> Candidate | None:
    """Middle primes of B bits (as large as the budget allows), q0 of B + 1 and a special prime of 60 bits.

    The special prime P divides every key-switching error (``n_primes·(q/P)·...``,
    :meth:`~.noise.NoiseModel.key_switch`): at 60 bits rather than B + 1 it makes
    rotations and relinearizations nearly free of noise for the few bits it costs B.
    """
    budget = max_coeff_modulus_bits(n, opts.security)
    depth = sum(s.levels for s in stages) - (1 if free is Free.FIRST else 0)
    b_max = min(MAX_PRIME_BITS - 1, (budget - 1 - MAX_PRIME_BITS) // (depth + 1))
    b = opts.scale_bits if opts.scale_bits is not None else b_max
    if b > b_max:
        reasons.append(f"N={n}: {depth + 2} primes of {b} bits exceed the {budget}-bit limit at "
                       f"{opts.security}-bit security")
        return None
    if b < MIN_SCALE_BITS:
        reasons.append(f"N={n}: depth {depth} leaves only {b}-bit primes at {opts.security}-bit security")
        return None
    label = f"N={n}, B={b}" + (", first stage at scale 1" if free is Free.FIRST else "")
    return label, [b + 1] + [b] * depth + [MAX_PRIME_BITS], b - 1, free


def candidates(stages: list[Stage], opts: CKKSOptions, n: int, reasons: list[str]) -> list[Candidate]:
    """Chains to try at degree ``n``, within the security table's budget.

    Uniform chains (every affine stage rescaled, or the first one free in
    THROUGHPUT) and, in THROUGHPUT, chains in which no affine stage costs a
    level (:func:`~.chain.free_chain_bits`) for every message floor that fits.
    Why a chain is not offered is appended to ``reasons``.
    """
    throughput = opts.mode is Mode.THROUGHPUT
    frees = (Free.FIRST, Free.NONE) if throughput and stages[0].weighted and stages[0].integral else (Free.NONE,)
    out = [c for c in (_uniform(stages, opts, n, free, reasons) for free in frees) if c is not None]
    if throughput and opts.scale_bits is None:
        budget = max_coeff_modulus_bits(n, opts.security)
        for w in range(MAX_PRIME_BITS - 1, MIN_SCALE_BITS - 1, -1):
            bits = free_chain_bits(stages, w)
            if bits is not None and sum(bits) <= budget:
                out.append((f"N={n}, integer weights at scale 1, message floor 2**{w}", bits,
                            w + INPUT_EXTRA_BITS, Free.ALL))
    return out


def _q0_shortfall(plans: list[StagePlan], primes: list[int], error: float) -> int:
    """Bits the last remaining modulus lacks to hold the output bound plus ``error`` (0 when it holds them)."""
    depth = sum(sp.levels for sp in plans)
    final = primes[: len(primes) - 1 - depth]
    last = plans[-1].stage
    message = plans[-1].scale_out * (max(last.partial, last.pre_bias) + error)  # the sum before the bias too
    need = math.log2(2 * message) - sum(math.log2(q) for q in final)
    return math.ceil(need) + 1 if need > 0 else 0


def _wider_q0(bits: list[int], extra: int) -> list[int]:
    """The chain with ``extra`` more bits in q0, split into primes no larger than the special prime."""
    total, cap = bits[0] + extra, bits[-1]
    parts = -(-total // cap)
    return [max(MIN_SCALE_BITS, -(-total // parts))] * parts + bits[1:]


#: A passing chain: (primes count, stated error bound, primes, w, stage plans, CKKS-only error bound).
_Passing = tuple[int, float, list[int], int, list[StagePlan], float]


def _segment_problem(plans: list[StagePlan], err: float, reference: float, bits: float) -> str | None:
    """Why a requantized model's segments miss the target (each segment's noise against its last values), or None."""
    for sp in plans:
        if sp.stage.rounding:
            top = float(np.max(sp.stage.out_bound)) if sp.stage.out_bound.size else 0.0
            if sp.error_out > max(top, 1.0) * 2.0**-bits:
                return (f"stage {list(sp.stage.names)}: CKKS noise {sp.error_out:.3g} since the last requantize "
                        f"exceeds 2**-{bits} of the requantized bound {top:.3g}")
    if err > reference * 2.0**-bits:
        return f"error bound {err:.3g} of the last segment exceeds 2**-{bits} of the reference output magnitude {reference:.3g}"
    return None


def _requantized(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate, layouts: list[StageLayout],
                 reference: float) -> _Passing | str:
    """A chain for a model with requantize ops (see :func:`_candidate`); narrower middle primes when q0 must grow."""
    label, bits, w, free = cand
    uniform = len(set(bits[1:-1])) <= 1 and opts.scale_bits is None
    found = _requantized_chain(stages, opts, n, cand, layouts, reference)
    narrow = 1
    while isinstance(found, str) and found.startswith("the output plus") and uniform and w - narrow >= MIN_SCALE_BITS:
        middle = [b - narrow for b in bits[1:-1]]
        found = _requantized_chain(stages, opts, n, (label, [bits[0] - narrow, *middle, bits[-1] - narrow],
                                                     w - narrow, free), layouts, reference)
        narrow += 1
    return found


def _requantized_chain(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate,
                       layouts: list[StageLayout], reference: float) -> _Passing | str:
    _, bits, w, free = cand
    primes = coeff_primes(n, bits)
    plans, err, problems = propagate(stages, opts, n, primes, w, layouts, free, roundings=False, segments=True)
    early = _q0_shortfall(plans, primes, 0.0) if stages[-1].pre_bias else 0  # a completed square's last sum
    if early and sum(_wider_q0(bits, early)) <= max_coeff_modulus_bits(n, opts.security):
        bits = _wider_q0(bits, early)
        primes = coeff_primes(n, bits)
        plans, err, problems = propagate(stages, opts, n, primes, w, layouts, free, roundings=False, segments=True)
    problem = "; ".join(problems) or _segment_problem(plans, err, reference, opts.precision_bits)
    if problem:
        return problem
    plans, total, _ = propagate(stages, opts, n, primes, w, layouts, free)
    extra = _q0_shortfall(plans, primes, total)
    if extra:
        bits = _wider_q0(bits, extra)
        budget = max_coeff_modulus_bits(n, opts.security)
        if sum(bits) > budget:
            return (f"the output plus the error bound {total:.3g} (requantize roundings included) needs {extra} more "
                    f"bits in q0: {sum(bits)} bits exceed the {budget}-bit limit")
        primes = coeff_primes(n, bits)
        plans, total, problems = propagate(stages, opts, n, primes, w, layouts, free)
        if problems:
            return "; ".join(problems)
    _, ckks_err, _ = propagate(stages, opts, n, primes, w, layouts, free, roundings=False)
    return len(primes), total, primes, w, plans, ckks_err


def _candidate(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate, layouts: list[StageLayout],
               reference: float) -> _Passing | str:
    """The chain ``cand`` if it holds every value and meets the precision target, else why not.

    Without requantize ops, the target applies to the error bound.  With them
    (:func:`_requantized`), it applies to each segment between requantize ops:
    the noise CKKS adds there, against the bound the segment ends with (the
    integer model itself rounds there by up to 1/2).  The stated bound then
    carries every segment's noise and every skipped rounding through the later
    stages (a worst case, which can exceed the outputs of a deep model), and
    q0 grows, when it must, to hold the output bound plus that bound.
    """
    if any(st.rounding for st in stages):
        return _requantized(stages, opts, n, cand, layouts, reference)
    _, bits, w, free = cand
    primes = coeff_primes(n, bits)
    plans, err, problems = propagate(stages, opts, n, primes, w, layouts, free)
    if problems:
        return "; ".join(problems)
    if err > reference * 2.0**-opts.precision_bits:
        return (f"error bound {err:.3g} exceeds 2**-{opts.precision_bits} of the reference output magnitude "
                f"{reference:.3g}")
    return len(primes), err, primes, w, plans, err


def _try_degree(stages: list[Stage], opts: CKKSOptions, n: int, reference: float,
                reasons: list[str]) -> tuple[_Passing, RotationKeys] | None:
    """The best passing chain at degree ``n`` (fewest primes, then smallest error) and its Galois keys, or None.

    Under ``transfer=BYTES`` with a gathered first stage, the chain without the
    gather is planned too, and the gather is kept unless the other needs fewer
    bits (it rotates less; the chains differ by the error each layout adds).
    """
    if opts.mode is Mode.LATENCY:
        widest = max([next_pow2(stages[0].n_in)] + [max(next_pow2(s.n_in), next_pow2(s.n_out)) for s in stages])
        if widest > n // 2:
            reasons.append(f"N={n}: a layer needs {widest} slots, only {n // 2}")
            return None
    chains = candidates(stages, opts, n, reasons)
    key_bytes = switch_key_bytes(n, max((len(c[1]) for c in chains), default=1))
    layouts, keys = rotation_keys(stages, opts, n, key_bytes)
    found = _best_chain(stages, opts, n, reference, reasons, chains, layouts)
    bytes_first = opts.transfer is Transfer.BYTES and opts.scale_bits is None
    if found is not None and bytes_first and layouts and layouts[0].gather is not None:
        plain = replace(opts, client_gather=False)
        other_layouts, other_keys = rotation_keys(stages, plain, n, key_bytes)
        other = _best_chain(stages, plain, n, reference, [], chains, other_layouts)
        if other is not None and _bit_length(other[2]) < _bit_length(found[2]):
            return other, other_keys
    return (found, keys) if found is not None else None


def _best_chain(stages: list[Stage], opts: CKKSOptions, n: int, reference: float, reasons: list[str],
                chains: list[Candidate], layouts: list[StageLayout]) -> _Passing | None:
    """The best of ``chains`` in these layouts (BYTES: narrowed, fewest primes then bits), or None."""
    passing = []
    for cand in chains:
        try:
            found = _candidate(stages, opts, n, cand, layouts, reference)
        except ParameterError as exc:  # SEAL has too few primes of these sizes for N: try the next chain
            found = str(exc)
        if isinstance(found, str):
            reasons.append(f"{cand[0]}: {found}")
        else:
            passing.append(found)
    if not passing:
        return None
    if opts.transfer is Transfer.BYTES and opts.scale_bits is None:
        narrowed = [_narrowest(stages, opts, n, cand, layouts, reference) for cand in chains]
        narrow = [c for c in narrowed if c is not None]
        return min(passing + narrow, key=lambda c: (c[0], _bits(c[2]), c[1]))
    return min(passing, key=lambda c: (c[0], c[1]))


def _bit_length(primes: list[int]) -> int:
    """Bits of the data primes (the special prime, last, excluded): what a request ciphertext carries."""
    return sum(int(q).bit_length() for q in primes[:-1])


def _bits(primes: list[int]) -> float:
    return sum(math.log2(q) for q in primes)


def _narrowest(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate, layouts: list[StageLayout],
               reference: float) -> _Passing | None:
    """``transfer=BYTES``: the narrowest chain that still meets the target.

    A request ciphertext holds every data prime, so each bit of B saves
    ``depth·N/8`` bytes; SEAL's speed does not depend on B (64-bit words), so
    latency is unchanged and the error bound grows only up to the target.
    Bisection on a uniform B (the target is met from some B up), then
    :func:`_descend` lowers each prime on its own.
    """
    label, bits, w, free = cand
    if len(set(bits[1:-1])) > 1 or bits[0] != w + 2:  # only the uniform chains
        return None
    lo, hi, best = MIN_SCALE_BITS, w + 1, None
    while lo < hi:
        mid = (lo + hi) // 2
        found = _try(stages, opts, n, (label, [mid + 1] + [mid] * (len(bits) - 2) + [bits[-1]], mid - 1, free),
                     layouts, reference)
        if isinstance(found, str):
            lo = mid + 1
        else:
            best, hi = found, mid
    if best is None:  # no narrower uniform chain: descend from this one (hi is still w + 1)
        found = _try(stages, opts, n, cand, layouts, reference)
        if isinstance(found, str):
            return None
        best = found
    return _descend(stages, opts, n, (label, bits, hi - 1, free), best, layouts, reference)


def _try(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate, layouts: list[StageLayout],
         reference: float) -> _Passing | str:
    try:
        return _candidate(stages, opts, n, cand, layouts, reference)
    except ParameterError as exc:  # SEAL has too few primes of these sizes for N
        return str(exc)


def _descend(stages: list[Stage], opts: CKKSOptions, n: int, cand: Candidate, best: _Passing,
             layouts: list[StageLayout], reference: float) -> _Passing:
    """``best`` (a uniform chain) with each data prime lowered, one bit at a time, while the chain
    still meets the target: the levels differ in how much of the error budget they spend."""
    label, _, w, free = cand
    bits = [int(q).bit_length() for q in best[2]]
    improved = True
    while improved:
        improved = False
        for i in range(len(bits) - 1):
            trial = [*bits[:i], bits[i] - 1, *bits[i + 1:]]
            if trial[i] < MIN_SCALE_BITS:
                continue
            found = _try(stages, opts, n, (label, trial, w, free), layouts, reference)
            if not isinstance(found, str):
                bits, best, improved = trial, found, True
    return best


def make_plan(stages: list[Stage], opts: CKKSOptions, observed_output: int | None = None) -> CKKSPlan:
    """Choose N, the chain and the scales; compute the error bound.

    Args:
        stages: From :func:`~.stages.build_stages`.
        opts: User choices.
        observed_output: Largest |output| on calibration data (the precision reference).

    Raises:
        ParameterError: no N up to 32768 holds the depth at the requested
            security, or none meets the precision target, or forced choices
            cannot hold the values.
    """
    if not stages:
        raise ParameterError("the model has no operations to evaluate")
    out_bound = stages[-1].partial
    reference = float(observed_output) if observed_output else out_bound
    reasons: list[str] = []
    for n in [opts.poly_degree] if opts.poly_degree else DEGREES:
        found = _try_degree(stages, opts, n, reference, reasons)
        if found is not None:
            (_, err, primes, w, plans, ckks_err), keys = found
            latency = opts.mode is Mode.LATENCY
            first_free = plans[0].stage.weighted and plans[0].prime == 0 and plans[0].plain_scale == 1.0
            return CKKSPlan(opts, n, tuple(primes), w + 1, plans[0].scale_in, next_pow2(stages[0].n_in),
                            tuple(plans), err, reference, out_bound, keys.steps if latency else (),
                            stages[-1].rounding_total, any(s.can_clip for s in stages), ckks_err,
                            keys if latency else None, paired(opts, first_free))
    depth = sum(s.levels for s in stages)
    raise ParameterError(
        f"no CKKS parameters at {opts.security}-bit security evaluate this model (depth {depth}) within the "
        f"precision target: " + " | ".join(reasons[:12])
        + (f" | ... ({len(reasons) - 12} more)" if len(reasons) > 12 else "")
        + ". Lower precision_bits, use fewer Square/Poly layers (or lower degrees), or quantize with fewer bits."
    )


def plan_cheapest(variants: list[list[Stage]], opts: CKKSOptions,
                  observed_output: int | None = None) -> tuple[list[Stage], CKKSPlan]:
    """The cheaper of the first variant's plan and the first later variant that has one.

    The backend passes the stages as they are, then completed squares
    (:mod:`~.square`) from the most to the least completed: the first of those
    with a plan is the one with the fewest levels that meets the target.
    Cheaper: the smaller N, then the fewer primes, then the smaller error bound.

    Raises:
        ParameterError: no variant has a plan (the first variant's reason).
    """
    best: tuple[tuple[int, int, float], list[Stage], CKKSPlan] | None = None
    first: ParameterError | None = None
    for k, stages in enumerate(variants):
        try:
            plan = make_plan(stages, opts, observed_output)
        except ParameterError as exc:
            first = first or exc
            continue
        key = (plan.poly_degree, len(plan.primes), plan.max_abs_error)
        if best is None or key < best[0]:
            best = (key, stages, plan)
        if k > 0:
            break
    if best is None:
        raise first or ParameterError("no stage variant to plan")
    return best[1], best[2]
