"""The BFV parameter planner, key-less and fast: parameter choice, noise estimate, latency layout.

Oracles are analytic: the CRT primes are primes = 1 mod 2N (a Fermat witness
and the congruence, checked here, not by the planner's own primality test) whose
product holds every proven layer bound in the centered window (``T >= 2B + 1``);
the total coefficient modulus is within the HomomorphicEncryption.org table for
N and above the table for N/2 (no smaller ring holds the chain); the noise
estimate matches the formulas of :mod:`secquant.backends.bfv.noise` worked by
hand for one multiplication, falls with every multiplication, and leaves the
margin; the latency layout's period holds every stage.  Models are untrained
(seeded) digits networks: the planner only reads their bounds.  No key or
ciphertext is made.
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
from secquant.backends.bfv.layout import latency_layout
from secquant.backends.bfv.noise import (
    consumption,
    data_bits_needed,
    multiply_cost,
    noise_trace,
)
from secquant.backends.bfv.options import BFVOptions
from secquant.backends.bfv.params import (
    MAX_PRIME_BITS,
    choose_parameters,
    crt_primes,
    split_data_bits,
)
from secquant.backends.bfv.plan import build_plan
from secquant.backends.seal.security import MAX_COEFF_BITS
from secquant.data import load_dataset
from secquant.errors import ConfigError, ModulusOverflowError, ParameterError
from secquant.nn import Square
from secquant.quant.lowering import Square as SquareStage


def _qm(*layers: nn.Module, seed: int = 0) -> secquant.QuantizedModel:
    torch.manual_seed(seed)
    x = load_dataset("digits").x_train[:256]
    return secquant.quantize_model(nn.Sequential(*layers).eval(), x, bits=8)


@pytest.fixture(scope="module")
def mlp() -> secquant.QuantizedModel:
    """64 -> 16 -> Square -> 10: one multiplication, a bound below one 60-bit prime."""
    return _qm(nn.Linear(64, 16), Square(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def deep() -> secquant.QuantizedModel:
    """Two squares: a bound past one 60-bit prime (CRT)."""
    return _qm(nn.Linear(64, 16), Square(), nn.Linear(16, 16), Square(), nn.Linear(16, 10), seed=1)


def _largest_bound(qm: secquant.QuantizedModel) -> int:
    report = qm.bounds()
    return max(b.max_abs for b in (report.input, *report.layers))


def _check_choice(qm: secquant.QuantizedModel, mode: Mode) -> None:
    p = choose_parameters(qm, build_plan(qm), BFVOptions(mode=mode))
    n = p.poly_degree
    for t in p.plain_moduli:
        assert (t - 1) % (2 * n) == 0 and pow(2, t - 1, t) == 1 and pow(3, t - 1, t) == 1
        assert t.bit_length() <= MAX_PRIME_BITS
    assert len(set(p.plain_moduli)) == len(p.plain_moduli)
    assert math.prod(p.plain_moduli) >= 2 * _largest_bound(qm) + 1
    total = sum(p.coeff_bits)
    assert total <= MAX_COEFF_BITS[128][n]
    if n > 4096:
        assert total > MAX_COEFF_BITS[128][n // 2]  # the chain fits no smaller ring
    assert all(b <= MAX_PRIME_BITS for b in p.coeff_bits)
    assert p.final_budget >= p.margin
    assert p.to_dict()["estimated_security_bits"] >= 128


@pytest.mark.parametrize("mode", [Mode.THROUGHPUT, Mode.LATENCY])
def test_parameter_choice_one_prime(mlp: secquant.QuantizedModel, mode: Mode) -> None:
    _check_choice(mlp, mode)


@pytest.mark.parametrize("mode", [Mode.THROUGHPUT, Mode.LATENCY])
def test_parameter_choice_crt(deep: secquant.QuantizedModel, mode: Mode) -> None:
    assert deep.modulus_needed.bit_length() > MAX_PRIME_BITS
    _check_choice(deep, mode)
    assert len(choose_parameters(deep, build_plan(deep), BFVOptions(mode=mode)).plain_moduli) >= 2


def test_forced_values_are_checked(mlp: secquant.QuantizedModel) -> None:
    stages = build_plan(mlp)
    with pytest.raises(ModulusOverflowError):
        choose_parameters(mlp, stages, BFVOptions(plain_modulus=257))
    with pytest.raises(ParameterError):  # even: not a batching prime
        choose_parameters(mlp, stages, BFVOptions(plain_modulus=4 * mlp.modulus_needed))
    with pytest.raises(ParameterError):  # the coefficient modulus a multiplication needs exceeds 109 bits
        choose_parameters(mlp, stages, BFVOptions(poly_degree=4096))
    for bad in ({"security": 80}, {"poly_degree": 1000}, {"margin": 0}, {"margin": True}, {"mode": "fast"},
                {"plain_modulus": 2.5}):
        with pytest.raises(ConfigError):
            BFVOptions(**bad)


def test_crt_primes_are_the_fewest() -> None:
    needed = 2**150 + 1
    primes = crt_primes(8192, 59, needed)
    assert primes is not None and len(primes) == 3  # 2 primes of 59 bits hold < 2**118
    assert all(p.bit_length() == 59 and (p - 1) % (2 * 8192) == 0 for p in primes)
    assert math.prod(primes) >= needed > math.prod(primes[:-1])
    assert crt_primes(8192, 15, 2**40) is None  # no 15-bit prime is 1 mod 16384


def test_split_data_bits() -> None:
    assert split_data_bits(10) == [20]  # at least 20 bits each
    assert split_data_bits(60) == [60]
    assert split_data_bits(61) == [31, 31]
    assert split_data_bits(179) == [60, 60, 60]
    for bits in range(1, 400, 7):
        parts = split_data_bits(bits)
        assert sum(parts) >= bits and max(parts) <= 60 and len(parts) == max(1, math.ceil(bits / 60))


def _squares(k: int, dim: int = 4) -> list[SquareStage]:
    m = np.full(dim, 3, dtype=object)
    return [SquareStage((f"sq{i}",), (dim,), (dim,), m, m * m) for i in range(k)]


def test_noise_estimate_of_one_multiplication_by_hand() -> None:
    """One data prime of 60 bits, t = 65537, N = 8192: fresh 60 - log2(65537) - 13/2 - 5 bits, then a
    multiplication costs log2(65537) + 13 + 2 bits."""
    log_t = math.log2(65537)
    trace = noise_trace(_squares(1), Mode.THROUGHPUT, 8192, 65537, [60], None, margin=10)
    fresh = 60 - log_t - 6.5 - 5
    assert trace[0] == {"stage": "encrypt", "budget_bits": round(fresh, 1), "data_primes": 1}
    assert trace[1]["budget_bits"] == round(fresh - (log_t + 13 + 2), 1) and trace[1]["kind"] == "square"
    assert multiply_cost(65537, 8192) == pytest.approx(log_t + 15)


def test_noise_estimate_falls_with_depth_and_leaves_the_margin() -> None:
    """Without modulus switching (one data modulus) the final estimate falls by one multiplication per
    square; with a chain of primes each stage still consumes budget and the level never rises."""
    finals = []
    for depth in range(1, 6):
        stages = _squares(depth)
        finals.append(noise_trace(stages, Mode.THROUGHPUT, 16384, 65537, [400], None, 10)[-1]["budget_bits"])
        trace = noise_trace(stages, Mode.THROUGHPUT, 16384, 65537, [60] * 6, None, margin=10)
        budgets = [e["budget_bits"] for e in trace]
        assert all(a > b for a, b in itertools.pairwise(budgets))  # every stage consumes budget
        assert [e["data_primes"] for e in trace] == sorted((e["data_primes"] for e in trace), reverse=True)
        bits = split_data_bits(data_bits_needed(stages, Mode.THROUGHPUT, 16384, 65537, None, 10))
        assert noise_trace(stages, Mode.THROUGHPUT, 16384, 65537, bits, None, 10)[-1]["budget_bits"] >= 10
    steps = [a - b for a, b in itertools.pairwise(finals)]
    assert steps == pytest.approx([multiply_cost(65537, 16384)] * 4, abs=0.11)  # budgets are rounded to 0.1
    assert consumption(_squares(3), Mode.THROUGHPUT, 16384, 65537, None) == [multiply_cost(65537, 16384)] * 3


def test_latency_layout_holds_every_stage(mlp: secquant.QuantizedModel) -> None:
    stages = build_plan(mlp)
    layout = latency_layout(stages, 64)
    widths = [st.out_features for st in stages]
    assert layout.period == 16 == max(widths)  # the first stage is gathered: its 64 inputs need no period
    assert layout.gather_cols is not None and layout.stages[0] is None
    last = layout.stages[2]
    assert last is not None and last.period == 16 and set(last.diagonals) <= set(range(16))
    gather = layout.gather(8192)
    assert gather is not None and gather.fold_steps[-1] == 4096  # the last fold swaps the rows
    assert layout.rotations(8192) == last.rotations + len(gather.fold_steps)
    assert all(0 < s < 4096 for s in layout.all_steps(8192))
