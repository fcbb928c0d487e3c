"""Paillier keys: sizes, known-answer ciphertexts, phe compatibility, and refusal of secret material.

Oracles: the textbook formulas evaluated with Python's ``pow`` (independent of
the CRT and fixed-base code paths), phe's own encryption and decryption, and
the rule that public material never carries p or q.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from torch import nn

import secquant
from secquant.artifact import encode_artifact
from secquant.backends.paillier.crypto import (
    Decryptor,
    Encryptor,
    PublicEncryptor,
    Randomness,
    fresh_randomizer,
    multi_pow,
)
from secquant.backends.paillier.keys import (
    PUBLIC_KEY_TYPE,
    check_key_bits,
    generate_keypair,
    load_private_key,
    load_public_key,
    security_bits,
)
from secquant.errors import ConfigError, KeyMaterialError, ParameterError

try:
    from tests.backends.paillier_known_keys import KNOWN_DJN_X, known_key
except ImportError:  # pytest's rootdir-less import mode
    from paillier_known_keys import KNOWN_DJN_X, known_key


@pytest.fixture(scope="module")
def tiny_model() -> secquant.QuantizedModel:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2))
    return secquant.quantize_model(model, np.random.default_rng(0).normal(size=(32, 4)), bits=8)


def test_small_keys_are_refused_unless_opted_out(tiny_model: secquant.QuantizedModel) -> None:
    with pytest.raises(ParameterError, match="2048"):
        secquant.compile(tiny_model, "paillier", key_bits=1024)
    with pytest.raises(ParameterError):
        check_key_bits(2046)
    with pytest.warns(UserWarning, match="INSECURE"):
        em = secquant.compile(tiny_model, "paillier", key_bits=1024, allow_insecure=True)
    assert em.parameters()["security_bits"] == 80
    assert secquant.compile(tiny_model, "paillier").parameters()["key_bits"] == 3072
    assert security_bits(3072) == 128 and security_bits(2048) == 112


def test_generated_keys_have_exact_size() -> None:
    key = generate_keypair(2048)  # 2048 bits: the smallest accepted size keeps the test fast
    assert key.public.bits == 2048 and key.p != key.q and key.p * key.q == key.public.n


def test_known_answer_ciphertext_matches_textbook_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    key = known_key(2048)
    n, n2 = int(key.public.n), int(key.public.nsquare)
    assert int(key.public.hs) == pow((-KNOWN_DJN_X * KNOWN_DJN_X) % n, n, n2)
    a = int.from_bytes(bytes(range(1, 129)), "little")  # fixed 1024-bit exponent
    enc = Encryptor(key)
    monkeypatch.setattr(enc, "_random_exponent", lambda: a.to_bytes(128, "little"))
    for m in (0, 1, -12345, 2**40):
        expected = pow(1 + n, m % n, n2) * pow(int(key.public.hs), a, n2) % n2
        (c,) = enc.encrypt([m])
        assert int(c) == expected
        assert int(Decryptor(key).decrypt([c])[0]) == m % n


@pytest.mark.parametrize("randomness", list(Randomness))
def test_ciphertexts_interoperate_with_phe(randomness: Randomness) -> None:
    from phe import paillier

    key = known_key(2048)
    ours, phe_priv = Encryptor(key, randomness), key.to_phe()
    values = [0, 7, -7, 123456789, -(2**50)]
    cts = ours.encrypt(values)
    assert len(set(cts)) == len(cts)
    assert [phe_priv.decrypt(paillier.EncryptedNumber(key.public.to_phe(), int(c))) for c in cts] == values
    phe_cts = [key.public.to_phe().encrypt(v).ciphertext() for v in values]
    n = int(key.public.n)
    assert [(int(r) + n // 2) % n - n // 2 for r in Decryptor(key).decrypt(phe_cts)] == values
    # Homomorphic dot product with signed weights, re-randomized.
    w = [3, -5, 0, 1, -1]
    y = multi_pow(cts, w, key.public.nsquare) * fresh_randomizer(key.public, randomness) % key.public.nsquare
    assert (int(Decryptor(key).decrypt([y])[0]) + n // 2) % n - n // 2 == sum(a * b for a, b in zip(w, values))


def test_public_material_has_no_secret_and_private_material_is_refused(tmp_path: os.PathLike[str]) -> None:
    key = known_key(2048)
    public = key.public.to_bytes()
    for secret in (key.p, key.q):
        assert str(int(secret)).encode() not in public
    assert load_public_key(public).fingerprint == key.public.fingerprint
    with pytest.raises(KeyMaterialError):
        load_public_key(key.to_bytes())
    smuggled = encode_artifact(PUBLIC_KEY_TYPE, 1, {"n": str(int(key.public.n)), "hs": str(int(key.public.hs)),
                                                    "key_bits": 2048, "p": str(int(key.p))}, {})
    with pytest.raises(KeyMaterialError, match="private"):
        load_public_key(smuggled)
    with pytest.raises(ConfigError):
        load_public_key(b"not an artifact")
    tampered = bytearray(public)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ConfigError):
        load_public_key(bytes(tampered))
    path = tmp_path / "key.npz"  # type: ignore[operator]
    key.write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_private_key(path).p == key.p


def test_server_refuses_a_private_key(tiny_model: secquant.QuantizedModel) -> None:
    key = known_key(2048)
    em = secquant.compile(tiny_model, "paillier", private_key=key)
    with pytest.raises(KeyMaterialError):
        em.server(key.to_bytes())
    with pytest.raises(ConfigError):
        em.server(b"garbage")


def test_public_encryptor_matches_djn_distribution_and_decrypts() -> None:
    key = known_key(2048)
    enc = PublicEncryptor(key.public)
    a = 0x1234_5678_9ABC_DEF0 << 900
    n2 = int(key.public.nsquare)
    assert int(enc.table.pow(a)) == pow(int(key.public.hs), a, n2)
    values = [5, -5, 0, 2**30]
    n = int(key.public.n)
    decrypted = [(int(r) + n // 2) % n - n // 2 for r in Decryptor(key).decrypt(enc.encrypt(values))]
    assert decrypted == values
