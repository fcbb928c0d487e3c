"""The CKKS parameter planner, key-less and fast: chains, error bound, layouts, parameter choice.

Oracles are analytic: the noise constants are the Cheon-Kim-Kim-Song bounds
worked by hand for σ = 3.2 and h = 2N/3; the error after one square follows
the propagation rule written out step by step; errors never shrink through a
chain of squares and grow with its depth; every message of the chosen plan
stays below half its level's modulus and the output below q0/2; the total
modulus is within the HomomorphicEncryption.org table for N, and the next
smaller N is refused (N is the smallest that meets the target); the layouts
chain their periods.  Models are untrained (seeded) digits networks: the
planner only reads their bounds.  SEAL is used only to list its primes; no key
or ciphertext is made.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.backends.base import Mode
from secquant.backends.ckks.chain import Free, free_chain_bits
from secquant.backends.ckks.layout import stage_layouts
from secquant.backends.ckks.noise import FFT_REL, NoiseModel, propagate
from secquant.backends.ckks.options import CKKSOptions
from secquant.backends.ckks.params import candidates, make_plan
from secquant.backends.ckks.stages import Stage, build_stages
from secquant.backends.seal.context import coeff_primes
from secquant.backends.seal.layout import next_pow2
from secquant.backends.seal.security import MAX_COEFF_BITS
from secquant.data import load_dataset
from secquant.errors import ParameterError
from secquant.nn import Square
from secquant.quant.lowering import Square as SquareStage

pytest.importorskip("tenseal")  # SEAL lists the primes (coeff_primes); no key is made


@pytest.fixture(scope="module")
def mlp() -> secquant.QuantizedModel:
    """64 -> 16 -> Square -> 10, 8-bit, untrained."""
    torch.manual_seed(0)
    x = load_dataset("digits").x_train[:256]
    return secquant.quantize_model(nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10)).eval(), x)


def _squares(k: int, m: float = 100.0, dim: int = 4) -> list[Stage]:
    """k CKKS square stages on inputs bounded by ``m`` (float bounds chained as the planner does)."""
    out, bound = [], np.full(dim, m)
    for i in range(k):
        ints = np.array([math.ceil(v) for v in bound], dtype=object)
        lowered = SquareStage((f"sq{i}",), (dim,), (dim,), ints, ints * ints)
        out.append(Stage(lowered, bound, bound * bound, None, np.zeros(dim, dtype=object)))
        bound = bound * bound
    return out


def test_noise_constants_by_hand() -> None:
    n, sigma = 8192, 3.2
    h = 2 * n / 3
    noise = NoiseModel(n)
    assert noise.fresh == pytest.approx(8 * math.sqrt(2) * sigma * n + 6 * sigma * math.sqrt(n)
                                        + 16 * sigma * math.sqrt(h * n))
    assert noise.rounding == pytest.approx(6 * math.sqrt(n / 12))
    assert noise.rescale == pytest.approx(math.sqrt(n / 3) * (3 + 8 * math.sqrt(h)))
    one = noise.key_switch(1, 2.0**40, 2.0**60)
    assert noise.key_switch(3, 2.0**40, 2.0**60) - noise.rescale == pytest.approx(3 * (one - noise.rescale))
    mean = 0.5 / math.sin(math.pi / (2 * n)) * 6 * sigma * math.sqrt(n)  # the digits' non-zero mean
    assert one - noise.rescale == pytest.approx(2.0**-20 * (8 * sigma * n / math.sqrt(3) + mean))


def test_rotation_error_peaks_at_slot_0_and_stays_within_the_key_switch_bound() -> None:
    """Real SEAL: rotating an encryption of zeros leaves a key-dependent error that peaks at slot 0.

    SEAL's key-switching digits are uniform on [0, q_i), mean q_i/2; the mean's slot values peak at the
    root nearest 1 (``NoiseModel.digit_mean``). Over 12 fresh keys: every slot's error stays within
    ``key_switch + fresh``, and slot 0 exceeds the 99th percentile of the other slots for at least 4
    keys. A model of independent, identically distributed slots (the bound before ``digit_mean``)
    passes that with probability below 5e-6; measured, 10 of 12 keys do (false failure ~6e-5).
    """
    from secquant.backends.seal.context import SealScheme, make_context, sealapi
    from secquant.backends.seal.primes import galois_elt

    sa, n, scale = sealapi(), 8192, 2.0**27
    primes = coeff_primes(n, [36, 35, 36])
    ctx = make_context(SealScheme.CKKS, n, primes, 128)
    encoder, evaluator = sa.CKKSEncoder(ctx), sa.Evaluator(ctx)
    noise = NoiseModel(n)
    bound = noise.key_switch(2, float(max(primes[:2])), float(primes[2])) + noise.fresh
    peaks = 0
    for _ in range(12):
        keygen = sa.KeyGenerator(ctx)
        galois = sa.GaloisKeys()
        keygen.create_galois_keys([galois_elt(1, n)], galois)
        pt, ct, out = sa.Plaintext(), sa.Ciphertext(), sa.Plaintext()
        encoder.encode([0.0] * (n // 2), ctx.first_parms_id(), scale, pt)
        sa.Encryptor(ctx, keygen.secret_key()).encrypt_symmetric(pt, ct)
        evaluator.rotate_vector_inplace(ct, 1, galois)
        sa.Decryptor(ctx, keygen.secret_key()).decrypt(ct, out)
        err = np.abs(np.array(encoder.decode_double(out))) * scale  # message units
        assert float(np.max(err)) <= bound
        peaks += bool(err[0] > np.quantile(err[1:], 0.99))
    assert peaks >= 4, peaks


def test_one_square_by_hand() -> None:
    """x in [-100, 100] encrypted at Δ = 2**w/100, squared and rescaled by the last data prime q."""
    n, w = 8192, 39
    primes = coeff_primes(n, [41, 40, 41])
    opts = CKKSOptions(mode=Mode.THROUGHPUT)
    stages = _squares(1)
    plans, err, problems = propagate(stages, opts, n, primes, w, stage_layouts(stages, opts, n))
    noise = NoiseModel(n)
    q0, q, special = primes
    delta = 2.0**w / 100
    e0 = (noise.fresh + noise.rounding + FFT_REL * 2.0**w) / delta  # integer units
    message = delta * 100  # = 2**w
    key_switch = 2 * (max(q0, q) / special) * 8 * 3.2 * n / math.sqrt(3) + noise.rescale
    e_msg = e0 * delta
    product = 2 * message * e_msg + e_msg**2 + key_switch + FFT_REL * message**2
    scale_out = delta * delta / q
    e1 = (product / q + noise.rescale) / scale_out
    assert not problems
    (sp,) = plans
    assert (sp.prime, sp.scale_in, sp.scale_out) == (q, delta, scale_out)
    assert sp.message_bound == pytest.approx(message**2)
    assert sp.error_out == pytest.approx(e1)
    assert err == pytest.approx(e1 + FFT_REL * stages[0].partial)  # plus the decoding FFT


def test_error_grows_with_depth() -> None:
    n, w = 16384, 39
    opts = CKKSOptions(mode=Mode.THROUGHPUT)
    finals = []
    for depth in range(1, 4):
        stages = _squares(depth, m=4.0)
        primes = coeff_primes(n, [41] + [40] * depth + [41])
        plans, err, _ = propagate(stages, opts, n, primes, w, stage_layouts(stages, opts, n))
        errors = [sp.error_out for sp in plans]
        assert all(a < b for a, b in itertools.pairwise(errors))
        assert [len(sp.level_primes) for sp in plans] == list(range(depth + 1, 1, -1))  # one prime per square
        finals.append(err)
    assert finals == sorted(finals) and len(set(finals)) == 3


@pytest.mark.parametrize("mode", [Mode.LATENCY, Mode.THROUGHPUT])
def test_plan_is_secure_wrap_free_and_smallest(mlp: secquant.QuantizedModel, mode: Mode) -> None:
    opts = CKKSOptions(mode=mode)
    stages = build_stages(mlp)
    plan = make_plan(stages, opts)
    n = plan.poly_degree
    assert plan.total_bits <= MAX_COEFF_BITS[128][n]
    assert all(p.bit_length() <= 60 for p in plan.primes)
    for sp in plan.stages:
        assert sp.message_bound < math.prod(sp.level_primes) / 2
    assert plan.output_scale * (plan.output_bound + plan.max_abs_error) < plan.primes[0] / 2
    assert plan.max_abs_error <= plan.reference_magnitude * 2.0**-opts.precision_bits
    if n > 4096:
        with pytest.raises(ParameterError):
            make_plan(stages, CKKSOptions(mode=mode, poly_degree=n // 2))


def test_uniform_chains_and_the_free_chain(mlp: secquant.QuantizedModel) -> None:
    stages = build_stages(mlp)
    reasons: list[str] = []
    for n in (8192, 16384):
        budget = MAX_COEFF_BITS[128][n]
        for label, bits, w, free in candidates(stages, CKKSOptions(mode=Mode.THROUGHPUT), n, reasons):
            assert sum(bits) <= budget, label
            if free is not Free.ALL:  # [B+1, B x depth, 60] with w = B - 1 (a 60-bit special prime)
                depth = sum(s.levels for s in stages) - (1 if free is Free.FIRST else 0)
                assert bits == [w + 2] + [w + 1] * depth + [60]
    # by hand: the input message is 2**(w+4); the square's prime brings its message back to about 2**w
    # (at most 60 bits); q0 holds the final message plus 2 bits
    w = 30
    log_scale = w + 4 - math.log2(float(np.max(stages[0].in_bound)))
    message = 2 * (log_scale + math.log2(float(np.max(stages[1].in_bound))))
    drop = min(60, max(20, math.ceil(message - w)))
    q0 = max(20, math.ceil(2 * log_scale - drop + math.log2(stages[-1].partial)) + 2)
    assert free_chain_bits(stages, w) == [q0, drop, 60]
    assert free_chain_bits(stages[1:], 30) is None  # must start with a weighted affine stage


def test_latency_layouts_chain_their_periods(mlp: secquant.QuantizedModel) -> None:
    stages = build_stages(mlp)
    lays = stage_layouts(stages, CKKSOptions(mode=Mode.LATENCY, client_gather=False), 8192)
    assert lays[0].period == next_pow2(stages[0].n_in)
    for prev, nxt in itertools.pairwise(lays):
        assert nxt.period == prev.period_out
    for st, lay in zip(stages, lays):
        if st.weighted:
            assert lay.bsgs is not None and lay.bsgs.width == next_pow2(st.n_out)
            assert lay.bsgs.period == max(lay.period, next_pow2(st.n_in), lay.bsgs.width)
        else:
            assert lay.bsgs is None and lay.gather is None
    assert all(lay.bsgs is None for lay in stage_layouts(stages, CKKSOptions(mode=Mode.THROUGHPUT), 8192))
