"""Galois key policies (``secquant.backends.seal.galois``) and the sparse CKKS LATENCY layouts.

Oracles:
* known answers and hypothesis properties of the non-adjacent form (it sums to
  the step, no two adjacent powers, weight at most the popcount);
* real SEAL: with keys made only for :meth:`RotationKeys.make`'s power-of-two
  steps, SEAL rotates by every planned step (it would raise if its own NAF
  needed a key we did not make), the slots move as ``np.roll`` says, and the
  error stays within ``switches(step)`` key-switch bounds; dropping one key
  makes SEAL refuse (a planted bug);
* the CKKS planner on a convolution: the nonzero-diagonal layout rotates less
  than the dense one, and an encrypted run under power-of-two keys stays within
  the stated bound of ``qm.forward_int``.  The bound is six-sigma: the false
  failure rate of the bound checks is far below 1e-6 per run.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import secquant
from secquant.backends.ckks.noise import NoiseModel
from secquant.backends.seal.context import coeff_primes
from secquant.backends.seal.galois import GaloisKeys, RotationKeys, naf, switch_key_bytes
from secquant.errors import ConfigError, SecquantError

pytest.importorskip("tenseal")


def test_naf_known_answers() -> None:
    assert naf(0) == []
    assert naf(1) == [1]
    assert naf(7) == [-1, 8]
    assert naf(8064) == [-128, 8192]
    assert naf(-3) == [1, -4]
    assert naf(37) == [1, 4, 32]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**20), max_value=2**20))
def test_naf_sums_to_the_step_without_adjacent_powers(step: int) -> None:
    terms = naf(step)
    assert sum(terms) == step
    exps = sorted(abs(t).bit_length() - 1 for t in terms)
    assert all(b - a >= 2 for a, b in itertools.pairwise(exps))
    assert all(abs(t) == 1 << e for t, e in zip(sorted(terms, key=abs), exps))
    assert len(terms) <= bin(abs(step)).count("1")


def test_rotation_keys_count_switches_and_refuse_what_they_cannot_rotate() -> None:
    steps = [1, 3, 37, 100, 2047, 4000]
    exact = RotationKeys.make(steps, 4096, GaloisKeys.STEPS)
    assert exact.steps == tuple(sorted(steps)) and exact.total(steps) == len(steps)
    powers = RotationKeys.make(steps, 4096, GaloisKeys.POWERS_OF_TWO)
    assert all(s & (s - 1) == 0 or (4096 - s) & (4096 - s - 1) == 0 for s in powers.steps)
    assert powers.switches(37) == 3 and powers.switches(1) == 1 and powers.switches(4096) == 0
    assert powers.worst(steps) == max(len(naf(s)) for s in steps)
    with pytest.raises(ConfigError, match="no Galois key"):
        exact.switches(5)
    with pytest.raises(ConfigError):
        RotationKeys(4096, (1,), GaloisKeys.AUTO)
    with pytest.raises(ConfigError):
        RotationKeys(4096, (4096,), GaloisKeys.STEPS)
    assert switch_key_bytes(32768, 16) == 15 * 2 * 16 * 32768 * 8


def _seal_rotations(key_steps: tuple[int, ...], steps: list[int]) -> dict[int, float]:
    """Rotate an encryption of 0..slots-1 by each step with keys for ``key_steps`` only: max error per step."""
    from secquant.backends.seal.context import SealScheme, make_context, sealapi
    from secquant.backends.seal.primes import galois_elt

    sa, n, scale = sealapi(), 8192, 2.0**30
    primes = coeff_primes(n, [40, 40, 60])
    ctx = make_context(SealScheme.CKKS, n, primes, 128)
    keygen = sa.KeyGenerator(ctx)
    galois = sa.GaloisKeys()
    keygen.create_galois_keys([galois_elt(s, n) for s in key_steps], galois)
    encoder, evaluator = sa.CKKSEncoder(ctx), sa.Evaluator(ctx)
    values = np.arange(n // 2, dtype=np.float64)
    pt = sa.Plaintext()
    encoder.encode(values.tolist(), ctx.first_parms_id(), scale, pt)
    fresh = sa.Ciphertext()
    sa.Encryptor(ctx, keygen.secret_key()).encrypt_symmetric(pt, fresh)
    errors = {}
    for step in steps:
        ct, out = sa.Ciphertext(), sa.Plaintext()
        evaluator.rotate_vector(fresh, step, galois, ct)
        sa.Decryptor(ctx, keygen.secret_key()).decrypt(ct, out)
        got = np.array(encoder.decode_double(out))
        errors[step] = float(np.max(np.abs(got - np.roll(values, -step)))) * scale  # message units
    return errors


def test_seal_rotates_by_every_step_with_the_power_of_two_keys_within_the_switch_bound() -> None:
    steps = [1, 3, 37, 100, 1000, 2047, 4000]
    keys = RotationKeys.make(steps, 4096, GaloisKeys.POWERS_OF_TWO)
    assert len(keys.steps) < len(steps) + 4
    errors = _seal_rotations(keys.steps, steps)
    noise = NoiseModel(8192)
    primes = coeff_primes(8192, [40, 40, 60])
    ks = noise.key_switch(2, float(max(primes[:2])), float(primes[2]))
    for step, err in errors.items():
        assert err <= keys.switches(step) * ks + noise.fresh + noise.rounding, (step, err)


def test_seal_refuses_a_rotation_whose_naf_term_has_no_key() -> None:
    """Planted bug: drop the key for 32, a NAF term of 37 = 1 + 4 + 32; SEAL and RotationKeys both refuse."""
    keys = RotationKeys.make([37], 4096, GaloisKeys.POWERS_OF_TWO)
    assert keys.steps == (1, 4, 32)
    crippled = RotationKeys(4096, (1, 4), GaloisKeys.POWERS_OF_TWO)
    with pytest.raises(ConfigError):
        crippled.switches(37)
    with pytest.raises(Exception, match="(?i)galois key"):
        _seal_rotations(crippled.steps, [37])


@pytest.fixture(scope="module")
def conv_qm():
    """A stride-1, padded convolution on the 8x8 digits (untrained weights: the oracle is ``forward_int``)."""
    import torch
    from torch import nn

    from secquant.data import load_dataset
    from secquant.nn import Square

    torch.manual_seed(0)
    ds = load_dataset("digits")
    x = ds.x_train.reshape(-1, 1, 8, 8)[:256].astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), Square(), nn.Flatten(), nn.Linear(192, 10))
    return secquant.quantize_model(model, x, bits=6), ds.x_test.reshape(-1, 1, 8, 8).astype(np.float32)


def test_nonzero_diagonals_rotate_less_than_the_dense_layout(conv_qm) -> None:
    """A stride-1 convolution's diagonals cluster: the searched layout rotates far less than the dense one."""
    from secquant.backends.ckks.stages import build_stages
    from secquant.backends.seal.layout import dense_bsgs

    qm, _ = conv_qm
    em = secquant.compile(qm, "ckks", mode="latency", client_gather=False, galois_keys="steps")
    params = em.parameters()
    stages = build_stages(qm)
    first = next(s for s in stages if s.weighted)
    dense = dense_bsgs(first.n_in, first.n_out, 1 << (first.n_in - 1).bit_length())
    conv = params["stages"][0]["layout"]
    assert conv["rotations"] <= dense.rotations // 2, (conv, dense.rotations)
    assert params["galois_key_policy"]["policy"] == "steps"
    assert params["key_switches_per_input"] == params["rotations_per_input"]


@pytest.fixture(scope="module")
def mnist_conv_qm():
    """A stride-1 convolution on 28x28 MNIST with 4 channels: many rotation steps (planned only, never run)."""
    import torch
    from torch import nn

    from secquant.data import load_dataset
    from secquant.nn import Square

    torch.manual_seed(0)
    x, _ = load_dataset("mnist").images()
    model = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), Square(), nn.Flatten(), nn.Linear(3136, 10))
    return secquant.quantize_model(model, x[:128], bits=6)


def test_auto_keeps_step_keys_within_budget_and_switches_to_powers_of_two_past_it(conv_qm, mnist_conv_qm) -> None:
    qm, _ = conv_qm
    auto = secquant.compile(qm, "ckks", mode="latency", client_gather=False).parameters()
    assert auto["galois_key_policy"]["policy"] == "steps" and "fit" in auto["galois_key_policy"]["reason"]
    few = secquant.compile(qm, "ckks", mode="latency", client_gather=False, galois_key_budget_bytes=1).parameters()
    assert few["galois_key_policy"]["policy"] == "steps" and "not half as many" in few["galois_key_policy"]["reason"]
    qm = mnist_conv_qm
    tight = secquant.compile(qm, "ckks", mode="latency", client_gather=False, galois_key_budget_bytes=1).parameters()
    policy = tight["galois_key_policy"]
    assert policy["policy"] == "powers_of_two" and "exceed" in policy["reason"]
    slots = tight["poly_degree"] // 2
    assert all(s & (s - 1) == 0 or (slots - s) & (slots - s - 1) == 0 for s in tight["galois_steps"])
    assert tight["key_switches_per_input"] >= tight["rotations_per_input"]
    assert tight["sizes_bytes_uncompressed"]["galois_keys"] == policy["bytes_uncompressed"]


@pytest.mark.parametrize("bad", [{"galois_keys": "some"}, {"galois_key_budget_bytes": 0},
                                 {"galois_key_budget_bytes": True}, {"galois_key_budget_bytes": 1.5},
                                 {"complete_squares": "yes"}])
def test_bad_key_and_square_options_are_refused(conv_qm, bad) -> None:
    with pytest.raises(ConfigError) as info:
        secquant.compile(conv_qm[0], "ckks", mode="latency", **bad)
    assert isinstance(info.value, SecquantError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("policy", ["powers_of_two", "steps"])
def test_sparse_layouts_decrypt_within_the_stated_bound(conv_qm, policy) -> None:
    """Encrypted: the convolution's sparse layout, with composed rotations or one key per step, vs the oracle."""
    qm, x = conv_qm
    em = secquant.compile(qm, "ckks", mode="latency", client_gather=False, galois_keys=policy)
    params = em.parameters()
    composed = params["key_switches_per_input"] > params["rotations_per_input"]
    assert composed == (policy == "powers_of_two")
    xq = qm.quantize_input(x[:6])
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    out = np.asarray(em.forward_int(xq), dtype=np.float64)
    assert float(np.max(np.abs(out - ref))) <= params["max_abs_error_int"]
    assert np.array_equal(out.argmax(1), ref.argmax(1))
