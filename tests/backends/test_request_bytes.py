"""Request bytes: packed ciphertexts, the ``transfer`` option, and the size model of ``em.parameters()``.

Every request format is decrypted: bit-exact against ``qm.forward_int`` under BFV, within the
proven error bound under CKKS.  The size model is checked against real serialized encryptions.
"""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.backends.base import run_rounds
from secquant.backends.seal.ciphertext import Transfer, from_bytes, pack, packed_size, unpack
from secquant.backends.seal.serialize import scratch
from secquant.errors import ConfigError, ParameterError, SecquantError

sa = pytest.importorskip("tenseal.sealapi")


def _ckks_kit(n: int = 8192, bits: tuple[int, ...] = (44, 43, 43, 43, 44)) -> dict:
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(n, list(bits)))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
    kg = sa.KeyGenerator(ctx)
    return {"ctx": ctx, "enc": sa.Encryptor(ctx, kg.secret_key()), "dec": sa.Decryptor(ctx, kg.secret_key()),
            "encoder": sa.CKKSEncoder(ctx), "bits": list(bits[:-1]), "n": n}


@pytest.fixture(scope="module")
def ckks() -> dict:
    return _ckks_kit()


def _fresh(kit: dict, values: list[float], seeded: bool) -> bytes:
    pt = sa.Plaintext()
    kit["encoder"].encode(values, kit["ctx"].first_parms_id(), 2.0**35, pt)
    if seeded:
        return scratch().dump(kit["enc"].encrypt_symmetric(pt))
    ct = sa.Ciphertext()
    kit["enc"].encrypt_symmetric(pt, ct)
    return scratch().dump(ct)


def _decode(kit: dict, blob: bytes) -> np.ndarray:
    ct = scratch().load(sa.Ciphertext(), kit["ctx"], blob, "test ciphertext")
    pt = sa.Plaintext()
    kit["dec"].decrypt(ct, pt)
    return np.asarray(kit["encoder"].decode_double(pt))


@pytest.mark.parametrize("seeded", [True, False])
def test_packed_ciphertext_decrypts_and_has_the_predicted_size(ckks: dict, seeded: bool) -> None:
    values = [1.0, -2.5, 3.25, 100.0]
    blob = _fresh(ckks, values, seeded)
    packed = pack(blob)
    assert len(packed) == packed_size(ckks["n"], ckks["bits"], seeded)
    assert len(packed) < 0.85 * len(blob)  # below SEAL's zstd blob
    np.testing.assert_allclose(_decode(ckks, packed)[:4], values, atol=1e-4)
    if not seeded:  # the throughput server's path reads the same residues from either form
        assert np.array_equal(from_bytes(packed)[1], from_bytes(blob)[1])
    assert unpack(packed)[16:] == unpack(pack(unpack(packed)))[16:]  # packing is stable


def test_corrupt_packed_ciphertexts_are_refused(ckks: dict) -> None:
    packed = bytearray(pack(_fresh(ckks, [1.0], True)))
    width_at = 10 + 97  # packed header, then the SEAL prefix, then one width byte per row
    with pytest.raises(ConfigError):
        unpack(bytes(packed[:-5000]))  # truncated
    bad = bytearray(packed)
    bad[width_at] = 0
    with pytest.raises(ConfigError):
        unpack(bytes(bad))
    bad = bytearray(packed)
    bad[width_at + 200] ^= 0xFF  # residue bits flipped: a residue at or above its prime (SEAL refuses) or noise
    try:
        out = _decode(ckks, bytes(bad))
    except SecquantError:
        return
    assert abs(out[0] - 1.0) > 1.0  # accepted only as garbage, never silently as the original


def test_transfer_option_is_typed() -> None:
    from secquant.backends.bfv.options import BFVOptions
    from secquant.backends.ckks.options import CKKSOptions

    assert CKKSOptions().transfer is Transfer.BALANCED and CKKSOptions().client_rotations is False
    assert CKKSOptions(transfer="latency").client_rotations is True
    assert CKKSOptions(transfer="bytes").client_gather is True  # a gather that fits one ciphertext (SharedGather)
    assert CKKSOptions(transfer="bytes", client_rotations=True).client_rotations is True
    assert BFVOptions(transfer="bytes").transfer is Transfer.BYTES
    with pytest.raises(ConfigError):
        CKKSOptions(transfer="small")
    with pytest.raises(ConfigError):
        BFVOptions(transfer=3)


def _round(em, xq):
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(xq)
    result, _ = run_rounds(client, server, payload)
    bound = em.parameters()["wire"].get("response_bytes_per_input_max")
    if bound is not None:  # latency: the stated response bound holds, and is not loose by more than 2x
        assert bound / 2 < len(result) / len(xq) <= bound
    return payload, client.decrypt(result)


@pytest.mark.parametrize("transfer", ["bytes", "balanced", "latency"])
def test_bfv_latency_requests_decrypt_bit_exact(digits_mlp, transfer: str) -> None:
    qm = digits_mlp.qm
    xq = qm.quantize_input(digits_mlp.x_test[:1])
    em = secquant.compile(qm, "bfv", mode="latency", transfer=transfer)
    wire = em.parameters()["wire"]  # before any key of this model exists
    payload, out = _round(em, xq)
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))
    predicted = wire["request_bytes_per_input"]
    assert em.parameters()["request_bytes_per_batch"] == predicted
    if transfer == "latency":
        assert predicted < len(payload) < 1.25 * predicted  # zstd: about 1.1x the packed size
    else:
        assert abs(len(payload) - predicted) <= 0.02 * predicted


@pytest.mark.parametrize("transfer", ["bytes", "balanced", "latency"])
def test_ckks_latency_requests_decrypt_within_bound(digits_mlp, transfer: str) -> None:
    qm = digits_mlp.qm
    xq = qm.quantize_input(digits_mlp.x_test[:2])
    em = secquant.compile(qm, "ckks", mode="latency", transfer=transfer)
    params = em.parameters()
    payload, out = _round(em, xq)
    err = np.abs(np.asarray(out, dtype=np.float64) - np.asarray(qm.forward_int(xq), dtype=np.float64))
    assert float(err.max()) <= params["max_abs_error_int"]
    wire = params["wire"]
    one = wire["request_ciphertexts_per_input"] * wire["request_ciphertext_bytes"]
    if transfer != "latency":  # two inputs in this request
        assert abs(len(payload) - 2 * one) <= 0.02 * 2 * one
    if transfer == "bytes":
        assert wire["request_ciphertexts_per_input"] == 1


def test_ckks_packed_responses_have_the_predicted_size_and_decrypt(digits_mlp) -> None:
    """Responses are packed at their output primes' widths: the stated size is met within 1%, and less than
    SEAL's 8 bytes per residue (the LATENCY transfer's form) by the packing's ratio."""
    qm = digits_mlp.qm
    xq = qm.quantize_input(digits_mlp.x_test[:1])
    em = secquant.compile(qm, "ckks", mode="latency")
    client = em.client()
    result = em.server(client.public_material()).evaluate(client.encrypt(xq))
    stated = em.parameters()["wire"]["response_bytes_per_input_max"]
    assert 0.99 * stated <= len(result) <= stated
    bits = sum(int(p).bit_length() for p in em.backend.plan.primes[:1])
    assert len(result) < 2 * em.backend.plan.poly_degree * 8 * (bits / 64 + 0.05)
    err = np.abs(client.decrypt(result).astype(np.float64) - qm.forward_int(xq).astype(np.float64))
    assert float(err.max()) <= em.parameters()["max_abs_error_int"]


def test_ckks_bytes_chooses_the_narrowest_primes_that_meet_the_target(mnist_mlp) -> None:
    """transfer=BYTES: the same number of primes (the same latency), fewer bits each, the target still met."""
    qm = mnist_mlp.qm
    balanced = secquant.compile(qm, "ckks", mode="latency").parameters()
    small = secquant.compile(qm, "ckks", mode="latency", transfer="bytes").parameters()
    assert len(small["primes"]) == len(balanced["primes"]) and small["poly_degree"] == balanced["poly_degree"]
    assert sum(small["coeff_modulus_bits"]) < sum(balanced["coeff_modulus_bits"])
    assert small["wire"]["request_bytes_per_input"] < 0.8 * balanced["wire"]["request_bytes_per_input"]
    assert small["relative_error_bound"] <= 2.0 ** -small["precision_bits_target"]
    with pytest.raises(ParameterError):  # the narrowest: one bit less misses the target
        secquant.compile(qm, "ckks", mode="latency", scale_bits=small["scale_bits"] - 1,
                         poly_degree=small["poly_degree"])


@pytest.mark.parametrize("fixture", ["digits_mlp", "mnist_mlp"])
def test_ckks_bytes_lowers_each_prime_while_the_target_holds(fixture: str, request: pytest.FixtureRequest) -> None:
    """After the narrowest uniform chain, each data prime is lowered bit by bit while the target holds:
    never more bits than the uniform chain, and no prime can lose one more bit without missing the target."""
    from secquant.backends.ckks import params as ckks_params
    from secquant.backends.ckks.chain import Free

    qm = request.getfixturevalue(fixture).qm
    em = secquant.compile(qm, "ckks", mode="latency", transfer="bytes")
    small = em.parameters()
    uniform = secquant.compile(qm, "ckks", mode="latency", transfer="bytes", scale_bits=small["scale_bits"],
                               poly_degree=small["poly_degree"]).parameters()  # the same layout, B forced
    assert sum(small["coeff_modulus_bits"]) <= sum(uniform["coeff_modulus_bits"])
    assert small["relative_error_bound"] <= 2.0 ** -small["precision_bits_target"]
    stages, bits = em.backend.stages, small["coeff_modulus_bits"]
    opts, n = em.backend.options, small["poly_degree"]
    layouts, _ = ckks_params.rotation_keys(stages, opts, n, ckks_params.switch_key_bytes(n, len(bits)))
    reference, w = small["reference_output_magnitude"], small["scale_bits"] - 1
    for i in range(len(bits) - 1):
        lower = bits[:i] + [bits[i] - 1] + bits[i + 1:]
        found = ckks_params._try(stages, opts, n, ("test", lower, w, Free.NONE), layouts, reference)
        assert isinstance(found, str), f"prime {i} could lose a bit: {lower}"


def test_ckks_bytes_sends_fewer_ciphertexts_than_latency(digits_mlp) -> None:
    """The lever itself: without client rotations the request holds one ciphertext, not b1 copies."""
    qm = digits_mlp.qm
    fast = secquant.compile(qm, "ckks", mode="latency", transfer="latency").parameters()["wire"]
    small = secquant.compile(qm, "ckks", mode="latency", transfer="bytes").parameters()["wire"]
    assert fast["request_ciphertexts_per_input"] > 1 == small["request_ciphertexts_per_input"]
    assert small["request_bytes_per_input"] * 4 < fast["request_ciphertexts_per_input"] * fast[
        "request_ciphertext_bytes"]


@pytest.mark.parametrize("fixture", ["mnist_mlp", "mnist_cnn"])
def test_bfv_bytes_drops_a_gather_that_takes_more_ciphertexts(fixture: str, request: pytest.FixtureRequest) -> None:
    """transfer=BYTES: a dense first layer whose gather takes several ciphertexts per CRT prime is a BSGS
    product instead (one ciphertext per prime: 4x fewer bytes for 1.8x the rotations), bit-exact; a
    convolution, whose BSGS product would rotate 4x as much to halve the bytes, keeps its gather
    (failed first: BYTES always gathered)."""
    model = request.getfixturevalue(fixture)
    xq = model.qm.quantize_input(model.x_test[:1])
    balanced = secquant.compile(model.qm, "bfv", mode="latency")
    small = secquant.compile(model.qm, "bfv", mode="latency", transfer="bytes")
    gathered = small.backend.params.layout.gather_cols is not None
    assert gathered == (fixture == "mnist_cnn")
    sent, wanted = small.parameters()["wire"]["request_bytes_per_input"], balanced.parameters()["wire"]
    if fixture == "mnist_mlp":
        assert sent < 0.5 * wanted["request_bytes_per_input"]
        assert small.parameters()["wire"]["request_ciphertexts_per_input"] == small.parameters()["crt_primes"]
        assert "gathered" not in small.parameters()["packing"]
    payload, out = _round(small, xq)
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(model.qm.forward_int(xq), dtype=object))
    assert abs(len(payload) - sent) <= 0.02 * sent


def test_bfv_throughput_packed_whole_request_is_bit_exact(digits_mlp) -> None:
    """A client may send packed whole ciphertexts (no client of ours does: BALANCED seeds them, LATENCY
    sends SEAL's blobs); the server reads their residues row by row from the wire, bit-exact."""
    from secquant.backends.seal.wire import BFV_MAGIC, frame, unframe

    qm = digits_mlp.qm
    xq = qm.quantize_input(digits_mlp.x_test[:5])
    em = secquant.compile(qm, "bfv", mode="throughput", transfer="latency")
    client, server = em._roles()
    meta, blobs = unframe(client.encrypt(xq), "batch", BFV_MAGIC)
    assert meta["seeded"] is False
    packed = frame("batch", meta, [pack(b) for b in blobs], BFV_MAGIC)
    out = client.decrypt(server.evaluate(packed))
    assert np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))
    per = packed_size(em.parameters()["poly_degree"], em.parameters()["coeff_modulus_bits"][:-1], False)
    assert abs(len(packed) - len(blobs) * per) <= 0.02 * len(packed)


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_throughput_requests_are_seeded_and_correct(digits_mlp, scheme: str) -> None:
    """BALANCED (the default) and BYTES seed throughput requests (half the bytes; the server lets SEAL
    expand the seeds, one input at a time); LATENCY sends whole ciphertexts whose residues the server
    reads straight from the wire.  Each payload matches its stated size; the results are bit-exact (BFV)
    or within the stated bound (CKKS)."""
    qm = digits_mlp.qm
    xq = qm.quantize_input(digits_mlp.x_test[:5])
    sizes = {}
    for transfer in ("latency", "balanced", "bytes"):
        em = secquant.compile(qm, scheme, mode="throughput", transfer=transfer)
        payload, out = _round(em, xq)
        sizes[transfer] = len(payload)
        wire = em.parameters()["wire"]
        if transfer != "latency":  # packed: the stated sizes are the payload's (one batch, whatever the inputs)
            one = wire["request_ciphertext_bytes"]
            cts = em.backend.request_ciphertexts()  # CKKS pairs features
            assert abs(len(payload) - cts * one * len(em.parameters().get("plain_moduli", [0]))) <= 0.02 * len(payload)
            assert abs(wire["request_bytes_per_batch"] - len(payload)) <= 1024
            assert wire["request_bytes_per_input_amortized"] * em.backend.batch_size() == wire["request_bytes_per_batch"]
        ref = np.asarray(qm.forward_int(xq))
        if scheme == "bfv":
            assert np.array_equal(np.asarray(out, dtype=object), ref.astype(object))
        else:
            err = np.abs(np.asarray(out, dtype=np.float64) - ref.astype(np.float64))
            assert float(err.max()) <= em.parameters()["max_abs_error_int"]
    assert sizes["balanced"] < 0.55 * sizes["latency"] and sizes["bytes"] <= sizes["balanced"]


def test_a_seeded_throughput_request_flagged_whole_is_refused(digits_mlp) -> None:
    """A dishonest client's flag cannot make the server read a seed as a polynomial: the residue parser refuses."""
    from secquant.backends.seal.wire import BFV_MAGIC, frame, unframe

    qm = digits_mlp.qm
    em = secquant.compile(qm, "bfv", mode="throughput", transfer="bytes")
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(qm.quantize_input(digits_mlp.x_test[:2]))
    meta, blobs = unframe(payload, "batch", BFV_MAGIC)
    lied = frame("batch", {**meta, "seeded": False}, [bytes(b) for b in blobs], BFV_MAGIC)
    with pytest.raises(ConfigError):
        server.evaluate(lied)
