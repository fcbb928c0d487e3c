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
POLY stage has several), middle primes of B = w + 1 bits and q0, P of B + 1
bits, so the last message (< 2**w plus the error) is below q0/2 by a factor
two: no value ever wraps around q0, which is how TenSEAL's tutorial parameters
corrupt large logits.  B is as large as the 128-bit table allows for N (at most
59); in THROUGHPUT, chains whose affine stages cost no level are tried too
(:mod:`~.chain`).  N is the smallest degree whose error bound (:mod:`~.noise`)
meets the precision target; among the chains that meet it, the fewest primes win.
"""

from __future__ import annotations

from secquant.backends.base import Mode
from secquant.backends.ckks.chain import INPUT_EXTRA_BITS, Free, free_chain_bits
from secquant.backends.ckks.layout import StageLayout, stage_layouts
from secquant.backends.ckks.noise import propagate
from secquant.backends.ckks.options import (
    DEGREES,
    MAX_PRIME_BITS,
    MIN_SCALE_BITS,
    CKKSOptions,
)
from secquant.backends.ckks.plan import CKKSPlan, StagePlan
from secquant.backends.ckks.stages import Stage
from secquant.backends.seal.context import coeff_primes
from secquant.backends.seal.layout import next_pow2
from secquant.backends.seal.security import max_coeff_modulus_bits
from secquant.errors import ParameterError

__all__ = ["Candidate", "candidates", "make_plan"]

#: A chain to try: (label, prime bit sizes with q0 first and the special prime last, w, which stages are free).
Candidate = tuple[str, list[int], int, Free]


def _uniform(stages: list[Stage], opts: CKKSOptions, n: int, free: Free, reasons: list[str]) -> Candidate | None:
    """Middle primes of B bits (as large as the budget allows), q0 and the special prime of B + 1."""
    budget = max_coeff_modulus_bits(n, opts.security)
    depth = sum(s.levels for s in stages) - (1 if free is Free.FIRST else 0)
    b_max = min(MAX_PRIME_BITS - 1, (budget - 2) // (depth + 2))
    b = opts.scale_bits if opts.scale_bits is not None else b_max
    if b > b_max:
        reasons.append(f"N={n}: {depth + 2} primes of {b} bits exceed the {budget}-bit limit at "
                       f"{opts.security}-bit security")
        return None
    if b < MIN_SCALE_BITS:
        reasons.append(f"N={n}: depth {depth} leaves only {b}-bit primes at {opts.security}-bit security")
        return None
    label = f"N={n}, B={b}" + (", first stage at scale 1" if free is Free.FIRST else "")
    return label, [b + 1] + [b] * depth + [b + 1], b - 1, free


def candidates(stages: list[Stage], opts: CKKSOptions, n: int, reasons: list[str]) -> list[Candidate]:
    """Chains to try at degree ``n``, within the security table's budget.

    Uniform chains (every affine stage rescaled, or the first one free in
    THROUGHPUT) and, in THROUGHPUT, chains in which no affine stage costs a
    level (:func:`~.chain.free_chain_bits`) for every message floor that fits.
    Why a chain is not offered is appended to ``reasons``.
    """
    throughput = opts.mode is Mode.THROUGHPUT
    frees = (Free.FIRST, Free.NONE) if throughput and stages[0].weighted else (Free.NONE,)
    out = [c for c in (_uniform(stages, opts, n, free, reasons) for free in frees) if c is not None]
    if throughput and opts.scale_bits is None:
        budget = max_coeff_modulus_bits(n, opts.security)
        for w in range(MAX_PRIME_BITS - 1, MIN_SCALE_BITS - 1, -1):
            bits = free_chain_bits(stages, w)
            if bits is not None and sum(bits) <= budget:
                out.append((f"N={n}, integer weights at scale 1, message floor 2**{w}", bits,
                            w + INPUT_EXTRA_BITS, Free.ALL))
    return out


def _galois_steps(plans: list[StagePlan], opts: CKKSOptions) -> tuple[int, ...]:
    """Rotation steps the server needs (the client's own baby steps excluded)."""
    steps: set[int] = set()
    for k, sp in enumerate(plans):
        if sp.gather is not None:
            steps.update(sp.gather.fold_steps)
        if sp.layout is not None:
            skip = set(range(1, sp.layout.baby)) if k == 0 and opts.client_rotations else set()
            steps.update(set(sp.layout.steps) - skip)
    return tuple(sorted(steps))


def _try_degree(stages: list[Stage], opts: CKKSOptions, n: int, reference: float,
                reasons: list[str]) -> tuple[list[int], int, list[StagePlan], float] | None:
    """The best passing chain at degree ``n`` (fewest primes, then smallest error), or None."""
    if opts.mode is Mode.LATENCY:
        widest = max([next_pow2(stages[0].n_in)] + [max(next_pow2(s.n_in), next_pow2(s.n_out)) for s in stages])
        if widest > n // 2:
            reasons.append(f"N={n}: a layer needs {widest} slots, only {n // 2}")
            return None
    layouts: list[StageLayout] = stage_layouts(stages, opts, n)
    passing = []
    for label, bits, w, free in candidates(stages, opts, n, reasons):
        primes = coeff_primes(n, bits)
        plans, err, problems = propagate(stages, opts, n, primes, w, layouts, free)
        if problems:
            reasons.append(f"{label}: " + "; ".join(problems))
        elif err > reference * 2.0**-opts.precision_bits:
            reasons.append(f"{label}: error bound {err:.3g} exceeds 2**-{opts.precision_bits} of the "
                           f"reference output magnitude {reference:.3g}")
        else:
            passing.append((len(primes), err, primes, w, plans))
    if not passing:
        return None
    _, err, primes, w, plans = min(passing, key=lambda c: (c[0], c[1]))
    return primes, w, plans, err


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
            primes, w, plans, err = found
            return CKKSPlan(opts, n, tuple(primes), w + 1, plans[0].scale_in, next_pow2(stages[0].n_in),
                            tuple(plans), err, reference, out_bound, _galois_steps(plans, opts))
    depth = sum(s.levels for s in stages)
    raise ParameterError(
        f"no CKKS parameters at {opts.security}-bit security evaluate this model (depth {depth}) within the "
        f"precision target: " + " | ".join(reasons[:12])
        + (f" | ... ({len(reasons) - 12} more)" if len(reasons) > 12 else "")
        + ". Lower precision_bits, use fewer Square/Poly layers (or lower degrees), or quantize with fewer bits."
    )
