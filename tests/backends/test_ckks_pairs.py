"""Two input features per CKKS slot (THROUGHPUT, ``complex_packing``): half the request, same meaning.

Oracles: SEAL itself for the slot signs (the monomial X**(N/2) multiplies slot j by
``i·(-1)**j``), a numpy reference of the paired first stage (hypothesis), and the
integer model: every paired request is decrypted and compared with
``qm.forward_int`` within the plan's stated bound, on class-based models with odd
and even input sizes.  A planted sign bug in the paired matrix is caught.  A
client or spec that lies about the layout is refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import secquant
from secquant.backends.base import run_rounds
from secquant.backends.ckks import pairs
from secquant.backends.ckks.client import CKKSClient
from secquant.backends.ckks.client_plan import CKKSClientPlan
from secquant.backends.ckks.wire import MATERIAL
from secquant.backends.seal.wire import frame, unframe
from secquant.data import load_dataset
from secquant.errors import ConfigError, SecquantError
from secquant.nn import Square

sa = pytest.importorskip("tenseal.sealapi")


class OddNet(nn.Module):
    """A class-based MLP on 63 features (an odd count: the last pair has one feature)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(63, 12)
        self.act = Square()
        self.fc2 = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TinyCNN(nn.Module):
    """A class-based convolution on 8x8 digits, then a square and a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2)
        self.act = Square()
        self.fc = nn.Linear(2 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.act(self.conv(x)), 1))


def _quantized(model: nn.Module, x: np.ndarray) -> secquant.QuantizedModel:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.uniform_(p, -0.3, 0.3)
    return secquant.quantize_model(model.eval(), x[:256], bits=6)


@pytest.fixture(scope="module")
def odd() -> tuple[secquant.QuantizedModel, np.ndarray]:
    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), -1)[:, :63].copy()
    return _quantized(OddNet(), x), x


@pytest.fixture(scope="module")
def cnn() -> tuple[secquant.QuantizedModel, np.ndarray]:
    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), 1, 8, 8)
    return _quantized(TinyCNN(), x), x


def _run(em: secquant.EncryptedModel, xq: np.ndarray) -> tuple[np.ndarray, int]:
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(xq)
    result, _ = run_rounds(client, server, payload)
    return np.asarray(client.decrypt(result), dtype=np.float64), len(payload)


# -- the primitives -------------------------------------------------------------


def test_the_slot_signs_are_what_seal_gives_the_monomial() -> None:
    """Known answer: encoding σ at scale 1 is X**(N/2) exactly, so a product with it multiplies slot j by σ_j;
    the constant i is not a monomial in SEAL's slot order (why the client encodes x + σ·x', not x + i·x')."""
    n = 4096
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(n, [40, 40]))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
    kg = sa.KeyGenerator(ctx)
    enc, dec, ev, ecd = (sa.Encryptor(ctx, kg.secret_key()), sa.Decryptor(ctx, kg.secret_key()),
                         sa.Evaluator(ctx), sa.CKKSEncoder(ctx))
    v = (np.arange(n // 2) % 97 - 48) + 1j * (np.arange(n // 2) % 13)

    def times(pt_values: object) -> np.ndarray:
        pt, mono = sa.Plaintext(), sa.Plaintext()
        ecd.encode(v.tolist(), ctx.first_parms_id(), 2.0**20, pt)
        ct, out = sa.Ciphertext(), sa.Ciphertext()
        enc.encrypt_symmetric(pt, ct)
        ecd.encode(pt_values, ctx.first_parms_id(), 1.0, mono)
        ev.multiply_plain(ct, mono, out)
        res = sa.Plaintext()
        dec.decrypt(out, res)
        return np.asarray(ecd.decode_complex(res))

    sigma = pairs.slot_signs(n // 2)
    np.testing.assert_allclose(times(sigma.tolist()), sigma * v, atol=1e-3)
    assert np.max(np.abs(times(1j) - 1j * v)) > 1.0


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(1, 9), rows=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_the_real_part_of_the_paired_map_is_the_integer_map(m: int, k: int, rows: int, seed: int) -> None:
    """Reference: with ``U, V = pair_matrix(W) @ z``, ``Re(U + σ·V) == W @ x`` for random integers, any k."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, size=(m, k))
    x = rng.integers(-128, 128, size=(rows, k))
    z = pairs.pair_slots(x, slots=8)
    sigma = pairs.slot_signs(8)[:rows]
    uv = np.stack(z, axis=1) @ pairs.pair_matrix(w).T  # (rows, 2m)
    y = uv[:, :m] + sigma[:, None] * uv[:, m:]
    np.testing.assert_array_equal(y.real, x @ w.T)
    assert pairs.request_ciphertexts(k, True) == len(z) == -(-k // 2)


def test_complex_packing_is_validated() -> None:
    from secquant.backends.ckks.options import CKKSOptions

    for bad in ("yes", 1, 0.0):
        with pytest.raises(ConfigError):
            CKKSOptions(complex_packing=bad)  # type: ignore[arg-type]
    assert CKKSOptions().complex_packing is True
    assert CKKSOptions(transfer="latency").complex_packing is False
    assert CKKSOptions(transfer="bytes", complex_packing=False).complex_packing is False


# -- end to end -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["odd", "cnn"])
def test_paired_requests_are_half_and_decrypt_within_the_bound(model: str, request: pytest.FixtureRequest) -> None:
    qm, x = request.getfixturevalue(model)
    xq = qm.quantize_input(x[:300])
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    paired = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)
    single = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192, complex_packing=False)
    params = paired.parameters()
    assert params["paired_inputs"] and not single.parameters()["paired_inputs"]
    # the public material grows by one key (said in parameters), the request halves
    key = params["paired_inputs_public_bytes_uncompressed"]
    assert key > 0 and single.parameters()["paired_inputs_public_bytes_uncompressed"] == 0
    assert params["sizes_bytes_uncompressed"]["galois_keys"] == key
    features = int(np.prod(qm.input_shape))
    assert params["sizes_bytes_uncompressed"]["request_ciphertexts_per_batch"] == -(-features // 2)
    out, sent = _run(paired, xq)
    assert np.max(np.abs(out - ref)) <= params["max_abs_error_int"]
    assert abs(sent - params["wire"]["request_bytes_per_batch"]) < 1024
    out1, sent1 = _run(single, xq)
    assert np.max(np.abs(out1 - ref)) <= single.parameters()["max_abs_error_int"]
    same_primes = params["coeff_modulus_bits"] == single.parameters()["coeff_modulus_bits"]
    assert sent < (0.55 if same_primes else 0.65) * sent1


def test_a_sign_bug_in_the_paired_map_is_caught(odd: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the odd features' weights not negated; the decrypted outputs leave the bound."""
    qm, x = odd
    xq = qm.quantize_input(x[:64])
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)

    def unsigned(weights: np.ndarray) -> np.ndarray:
        m = pairs.pair_matrix(weights)
        m[weights.shape[0]:] *= -1
        return m

    monkeypatch.setattr("secquant.backends.ckks.evaluate.pair_matrix", unsigned)
    out, _ = _run(em, xq)
    ref = np.asarray(qm.forward_int(xq), dtype=np.float64)
    assert np.max(np.abs(out - ref)) > em.parameters()["max_abs_error_int"]


def test_bytes_and_latency_transfer_choose_their_packing(odd: tuple) -> None:
    qm, _ = odd
    assert secquant.compile(qm, "ckks", mode="throughput", transfer="bytes").parameters()["paired_inputs"]
    assert not secquant.compile(qm, "ckks", mode="throughput", transfer="latency").parameters()["paired_inputs"]
    assert not secquant.compile(qm, "ckks", mode="latency").parameters()["paired_inputs"]


# -- dishonest peers ------------------------------------------------------------


def test_a_server_refuses_requests_that_lie_about_the_pairing(odd: tuple) -> None:
    qm, x = odd
    xq = qm.quantize_input(x[:8])
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)
    client = em.client()
    server = em.server(client.public_material())
    meta, blobs = unframe(client.encrypt(xq), "batch")
    with pytest.raises(ConfigError):  # one ciphertext per feature claimed under the paired fingerprint
        server.evaluate(frame("batch", meta, list(blobs) * 2))
    # a client that encodes at the full input scale (unpaired) under the paired plan
    liar = CKKSClient(qm.interface(), dataclasses.replace(client.plan, paired_inputs=False))
    liar._secret_key = client._secret_key
    liar._encryptor = client._encryptor
    lied = liar.encrypt(xq)
    lmeta, lblobs = unframe(lied, "batch")
    with pytest.raises(ConfigError, match="scale"):
        server.evaluate(frame("batch", lmeta, list(lblobs)[:len(blobs)]))


def test_paired_public_material_must_carry_the_conjugation_key(odd: tuple) -> None:
    qm, _ = odd
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)
    material = em.client().public_material()
    meta, blobs = unframe(material, MATERIAL)
    assert "galois_keys" in meta["parts"]
    keep = [i for i, p in enumerate(meta["parts"]) if p != "galois_keys"]
    stripped = frame(MATERIAL, dict(meta, parts=[meta["parts"][i] for i in keep]), [blobs[i] for i in keep])
    with pytest.raises(ConfigError, match="Galois"):
        em.server(stripped)


def test_a_spec_that_pairs_latency_inputs_is_refused(odd: tuple) -> None:
    qm, _ = odd
    em = secquant.compile(qm, "ckks", mode="latency")
    meta, arrays = CKKSClientPlan.of(em.backend.plan, "f").to_meta()
    for bad in (True, "yes", 1):
        with pytest.raises(SecquantError):
            CKKSClientPlan.from_meta(dict(meta, paired_inputs=bad), arrays)


def test_the_cost_model_counts_half_the_encryptions_and_the_conjugations(odd: tuple) -> None:
    from secquant.backends.ckks.cost import op_counts

    qm, _ = odd
    paired = op_counts(secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192).backend.plan)
    single = op_counts(secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192,
                                        complex_packing=False).backend.plan)
    assert (paired.encryptions, single.encryptions) == (32, 63)
    assert paired.key_switches == single.key_switches + 12  # one conjugation per output of fc1


def test_a_crafted_complex_input_is_an_honest_pair_of_real_inputs(odd: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that fills slots with any complex ``u + i·v`` (not ``x + σ·x'``) gets what the honest
    real inputs ``x = u, x' = (-1)**j·v`` give, within the bound: pairing leaks nothing real inputs do not."""
    qm, x = odd
    xq = np.asarray(qm.quantize_input(x[:40]), dtype=np.int64)
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)
    rng = np.random.default_rng(7)
    v = rng.integers(-31, 32, size=xq.shape)  # the crafted imaginary parts (6-bit inputs: [-32, 31])
    v[:, -1] = 0  # 63 features: the last slot pair has no partner

    def crafted(chunk: np.ndarray, slots: int) -> list[np.ndarray]:
        return [chunk[:, g] + 1j * v[:chunk.shape[0], g + 1] if g + 1 < chunk.shape[1] else chunk[:, g] + 0j
                for g in range(0, chunk.shape[1], 2)]

    monkeypatch.setattr("secquant.backends.ckks.client.pair_slots", crafted)
    out, _ = _run(em, xq)
    honest = xq.copy()
    signs = 1 - 2 * (np.arange(len(xq)) % 2)
    honest[:, 1::2] = v[:, 1::2] * signs[:, None]
    qm.interface().check_integers(honest.reshape(len(honest), *qm.input_shape))  # raises unless in range
    ref = np.asarray(qm.forward_int(honest), dtype=np.float64)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]


def test_whole_paired_inputs_are_read_from_the_wire(odd: tuple) -> None:
    """``transfer=latency`` with pairing forced: whole ciphertexts, whose residues the server parses at the
    request scale (half the input scale), decrypt within the bound."""
    qm, x = odd
    xq = qm.quantize_input(x[:50])
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192, transfer="latency", complex_packing=True)
    assert em.parameters()["paired_inputs"]
    out, _ = _run(em, xq)
    assert np.max(np.abs(out - np.asarray(qm.forward_int(xq), dtype=np.float64))) <= em.parameters()["max_abs_error_int"]


@pytest.mark.parametrize("features", [1, 2, 3])
def test_the_smallest_inputs_pair_within_the_bound(features: int) -> None:
    """One, two and three input features (a lone feature has no partner; its V row is zero)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(features, 3), Square(), nn.Linear(3, 2)).eval()
    x = np.random.default_rng(0).normal(size=(300, features)).astype(np.float32)
    qm = secquant.quantize_model(model, x, bits=6)
    em = secquant.compile(qm, "ckks", mode="throughput", poly_degree=8192)
    params = em.parameters()
    assert params["paired_inputs"]
    assert params["sizes_bytes_uncompressed"]["request_ciphertexts_per_batch"] == -(-features // 2)
    xq = qm.quantize_input(x[:20])
    out, _ = _run(em, xq)
    assert np.max(np.abs(out - np.asarray(qm.forward_int(xq), dtype=np.float64))) <= params["max_abs_error_int"]
