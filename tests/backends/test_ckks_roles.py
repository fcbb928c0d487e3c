"""CKKS role split: the server holds no secret key and refuses malformed bytes."""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant.backends.seal.serialize import save_seal
from secquant.backends.seal.wire import frame, unframe
from secquant.errors import ConfigError, KeyMaterialError

ts = pytest.importorskip("tenseal")


@pytest.fixture(scope="module")
def setup(digits_mlp):
    qm, x = digits_mlp.qm, digits_mlp.x_test
    em = secquant.compile(qm, "ckks", mode="throughput")
    client = em.client()
    material = client.public_material()
    return qm, x, em, client, material


def test_public_material_has_no_secret_key(setup):
    _, _, em, client, material = setup
    meta, blobs = unframe(material, "public material")
    # throughput mode rotates nothing; its paired inputs need the conjugation key
    assert meta["parts"] == ["public_key", "relin_keys", "galois_keys"]
    assert em.parameters()["paired_inputs"]
    secret = save_seal([client._secret_key])[0]
    assert all(secret not in blob for blob in blobs)
    em.server(material)  # accepted


def test_server_refuses_a_secret_key(setup):
    _, _, em, client, material = setup
    meta, blobs = unframe(material, "public material")
    meta = {**meta, "parts": [*meta["parts"], "secret_key"]}
    leaked = frame("public material", meta, [*blobs, save_seal([client._secret_key])[0]])
    with pytest.raises(KeyMaterialError):
        em.server(leaked)


def test_server_refuses_a_private_tenseal_context(setup):
    em = setup[2]
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60])
    with pytest.raises(KeyMaterialError):
        em.server(ctx.serialize(save_secret_key=True))
    ctx.make_context_public()
    with pytest.raises(ConfigError):
        em.server(ctx.serialize())


@pytest.mark.parametrize("mutate", ["garbage", "truncate", "kind", "blob"])
def test_malformed_payloads_raise_config_error(setup, mutate):
    qm, x, em, client, material = setup
    server = em.server(material)
    good = client.encrypt(qm.quantize_input(x[:2]))
    meta, blobs = unframe(good, "batch")
    bad = {
        "garbage": b"\x00not a payload",
        "truncate": good[:-100],
        "kind": frame("result", meta, blobs),
        "blob": frame("batch", meta, [b"junk" * 10] + blobs[1:]),
    }[mutate]
    with pytest.raises(ConfigError):
        server.evaluate(bad)
    with pytest.raises(ConfigError):
        client.decrypt(bad)


def test_roles_round_trip_through_bytes(setup):
    qm, x, em, client, material = setup
    server = em.server(material)
    xq = qm.quantize_input(x[:4])
    out = client.decrypt(server.evaluate(client.encrypt(xq)))
    ref = qm.forward_int(xq)
    assert np.max(np.abs(out - ref)) <= em.parameters()["max_abs_error_int"]


def test_material_from_other_parameters_is_refused(setup):
    qm, _, _, _, material = setup
    other = secquant.compile(qm, "ckks", mode="latency")
    with pytest.raises(ConfigError):
        other.server(material)


def test_released_public_material_is_made_again_and_still_works(digits_mlp):
    """An in-process run drops the client's cached public material (gigabytes for deep models) once the
    server holds it; asked again, the client makes fresh evaluation keys that a new server accepts."""
    qm, x = digits_mlp.qm, digits_mlp.x_test[:3]
    em = secquant.compile(qm, "ckks", mode="latency")
    xq = qm.quantize_input(x)
    first = em.forward_int(xq)
    client, _ = em._roles()
    assert client._material is None  # released after the server was built
    again = client.public_material()
    assert client.public_material() is again  # cached until released
    server = em.server(again)
    out = client.decrypt(server.evaluate(client.encrypt(xq)))
    bound = em.parameters()["max_abs_error_int"]
    exact = np.asarray(qm.forward_int(xq), dtype=np.int64)
    for got in (first, out):
        assert np.max(np.abs(np.asarray(got, dtype=np.int64) - exact)) <= bound
