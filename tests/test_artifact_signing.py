"""Signed and encrypted artifacts (issue 13, section 1): Ed25519 envelopes and AES-256-GCM at rest.

Oracles: ``forward_int`` of the saved model (bit-exact after a round trip),
planted attacks that must be refused (re-digested weights, swapped signer,
forged key id, truncation, every single-bit flip), the RFC 8032 test key for
key ids, and ``cryptography`` itself verifying the documented envelope layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from secquant.artifact import (
    encode_artifact,
    open_artifact,
    protect_artifact,
    read_artifact,
)
from secquant.errors import ArtifactError, IntegrityError, KeyMaterialError
from secquant.sealing import MODEL_KEY_ENV, DecryptionError, ModelKey
from secquant.signing import (
    SIGNED_MAGIC,
    generate_signing_keys,
    key_id,
    load_public_key,
    sign_bytes,
    verify_bytes,
)

pytest.importorskip("cryptography")
MODEL = "secquant.QuantizedModel"


@pytest.fixture(scope="module")
def qm():  # type: ignore[no-untyped-def]
    import secquant
    from secquant.data import load_dataset
    from secquant.models import digits_mlp

    torch.manual_seed(0)
    d = load_dataset("digits")
    return secquant.quantize_model(digits_mlp(8), d.x_train[:200], bits=6), d.x_test[:40]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    owner, _ = generate_signing_keys(root, "owner")
    thief, _ = generate_signing_keys(root, "thief")
    model_key = ModelKey.generate().write(root / "model.key")
    return {"owner": owner, "owner_pub": root / "owner.pub", "thief": thief, "thief_pub": root / "thief.pub",
            "model_key": model_key}


def _small(sign_with=None, encrypt_with=None) -> bytes:  # type: ignore[no-untyped-def]
    return encode_artifact("secquant.Small", 1, {"a": 1}, {"w": np.arange(6, dtype=np.int64).reshape(2, 3)},
                           sign_with=sign_with, encrypt_with=encrypt_with)


def test_integrity_error_is_a_value_error() -> None:
    assert issubclass(IntegrityError, ArtifactError) and issubclass(IntegrityError, ValueError)
    assert issubclass(DecryptionError, IntegrityError)


def test_signed_model_round_trip_is_bit_exact(qm, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, x = qm
    path = model.save(tmp_path / "m.npz", sign_with=keys["owner"])
    assert path.read_bytes().startswith(SIGNED_MAGIC)
    back = type(model).load(path, trusted=[keys["owner_pub"]])
    u = model.quantize_input(x)
    np.testing.assert_array_equal(back.forward_int(u), model.forward_int(u))
    assert type(model).load(path).forward_int(u).tolist() == model.forward_int(u).tolist()  # no trusted: still loads


def _redigest_with_changed_weight(plain: bytes) -> bytes:
    """What an attacker with write access does: change a weight, recompute the digest with our own tooling."""
    with np.load(io.BytesIO(plain), allow_pickle=False) as npz:
        header = json.loads(npz["__header__"].tobytes().decode())
        arrays = {n: npz[n] for n in npz.files if n != "__header__"}
    name = next(n for n in sorted(arrays) if arrays[n].dtype.kind == "i" and arrays[n].size > 1)
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] += 1
    return encode_artifact(header["type"], header["version"], header["meta"], arrays)


def test_tamper_then_redigest_is_refused_only_with_trusted(qm, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, x = qm
    signed = model.save(tmp_path / "m.npz", sign_with=keys["owner"]).read_bytes()
    plain = open_artifact(signed)
    forged = _redigest_with_changed_weight(plain)
    u = model.quantize_input(x)
    # The planted change is real: without trusted keys the digest passes and the outputs change.
    assert not np.array_equal(type(model).load(forged).forward_int(u), model.forward_int(u))
    with pytest.raises(IntegrityError, match="not signed"):
        type(model).load(forged, trusted=[keys["owner_pub"]])
    resigned = signed[: len(signed) - len(plain)] + forged  # the owner's signature on the forged body
    with pytest.raises(IntegrityError, match="bad signature"):
        type(model).load(resigned, trusted=[keys["owner_pub"]])


def test_swapped_signer_and_forged_key_id_are_refused(qm, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = qm
    by_thief = model.save(tmp_path / "t.npz", sign_with=keys["thief"]).read_bytes()
    with pytest.raises(IntegrityError, match="unknown key"):
        type(model).load(by_thief, trusted=[keys["owner_pub"]])
    owner_id = bytes.fromhex(key_id(load_public_key(keys["owner_pub"])))
    forged = by_thief[:9] + owner_id + by_thief[41:]
    with pytest.raises(IntegrityError, match="bad signature"):
        type(model).load(forged, trusted=[keys["owner_pub"]])
    assert type(model).load(by_thief, trusted=[keys["owner_pub"], keys["thief_pub"]]) is not None
    with pytest.raises(IntegrityError, match="unknown key"):
        type(model).load(by_thief, trusted=[])


def test_truncated_or_extended_signed_files_are_refused(keys) -> None:  # type: ignore[no-untyped-def]
    data = _small(sign_with=keys["owner"])
    for cut in [0, 5, 8, 40, 41, 104, 105, len(data) // 2, len(data) - 22, len(data) - 1]:
        with pytest.raises(IntegrityError):
            read_artifact(data[:cut], "secquant.Small", trusted=keys["owner_pub"])
    with pytest.raises(IntegrityError):
        read_artifact(data + b"\0", "secquant.Small", trusted=keys["owner_pub"])
    assert read_artifact(data, "secquant.Small", trusted=keys["owner_pub"])[1] == {"a": 1}


@pytest.mark.parametrize("layers", ["signed", "sealed", "both"])
def test_every_single_bit_flip_is_refused(keys, layers: str) -> None:  # type: ignore[no-untyped-def]
    """Flip one bit (each bit position mod 8 in turn) of every byte: always a typed error, never a load."""
    sign = keys["owner"] if layers != "sealed" else None
    seal = keys["model_key"] if layers != "signed" else None
    data = _small(sign_with=sign, encrypt_with=seal)
    kwargs = {"trusted": keys["owner_pub"] if sign else None, "decrypt_with": seal}
    assert read_artifact(data, "secquant.Small", **kwargs)[1] == {"a": 1}
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 1 << (i % 8)
        with pytest.raises(IntegrityError if sign or i >= 8 else ArtifactError):
            read_artifact(bytes(bad), "secquant.Small", **kwargs)


def test_encrypted_model_round_trip_and_what_stays_clear(qm, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, x = qm
    a = model.save(tmp_path / "a.npz", encrypt_with=keys["model_key"]).read_bytes()
    b = model.save(tmp_path / "b.npz", encrypt_with=keys["model_key"]).read_bytes()
    header_a, header_b = (json.loads(d[12 : 12 + int.from_bytes(d[8:12], "big")]) for d in (a, b))
    assert header_a["nonce"] != header_b["nonce"] and len(bytes.fromhex(header_a["nonce"])) == 12
    assert header_a["type"] == MODEL and header_a["key_id"] == ModelKey.from_file(keys["model_key"]).key_id
    assert any(shape for _, shape in header_a["arrays"].values())  # shapes readable without the key
    _, _, arrays = read_artifact(model.save(tmp_path / "p.npz"), MODEL, (1, 2, 3))
    secrets_in_clear = [arr.tobytes() for arr in arrays.values() if arr.nbytes >= 16]
    assert secrets_in_clear and not any(s in a or s in b for s in secrets_in_clear)  # no weight bytes at rest
    u = model.quantize_input(x)
    back = type(model).load(tmp_path / "a.npz", decrypt_with=keys["model_key"])
    np.testing.assert_array_equal(back.forward_int(u), model.forward_int(u))
    with pytest.raises(ArtifactError, match="encrypted; pass decrypt_with"):
        type(model).load(tmp_path / "a.npz")
    with pytest.raises(DecryptionError, match="wrong key"):
        type(model).load(tmp_path / "a.npz", decrypt_with=ModelKey.generate())
    with pytest.raises(IntegrityError, match="not one"):
        type(model).load(tmp_path / "p.npz", decrypt_with=keys["model_key"])


def test_model_key_from_environment(qm, keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    model, x = qm
    key = ModelKey.from_file(keys["model_key"])
    monkeypatch.setenv(MODEL_KEY_ENV, key.hex())
    path = model.save(tmp_path / "e.npz", encrypt_with=ModelKey.from_env(), sign_with=keys["owner"])
    back = type(model).load(path, trusted=[keys["owner_pub"]], decrypt_with=ModelKey.from_env())
    u = model.quantize_input(x)
    np.testing.assert_array_equal(back.forward_int(u), model.forward_int(u))
    assert key.hex() not in repr(key) and key == ModelKey.from_env()
    monkeypatch.setenv(MODEL_KEY_ENV, "abc")
    with pytest.raises(ValueError, match="64 hex"):
        ModelKey.from_env()


def test_secret_key_files_readable_by_others_are_refused(keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert stat.S_IMODE(keys["owner"].stat().st_mode) == 0o600
    assert stat.S_IMODE(keys["model_key"].stat().st_mode) == 0o600
    loose = tmp_path / "loose.key"
    loose.write_bytes(keys["owner"].read_bytes())
    os.chmod(loose, 0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        _small(sign_with=loose)
    loose_model = tmp_path / "loose.bin"
    loose_model.write_bytes(keys["model_key"].read_bytes())
    os.chmod(loose_model, 0o640)
    with pytest.raises(KeyMaterialError):
        _small(encrypt_with=loose_model)


def test_envelope_layout_verifies_with_plain_cryptography(keys) -> None:  # type: ignore[no-untyped-def]
    """The documented layout, checked independently: magic|1|key id|signature|body over the context prefix."""
    data = _small(sign_with=keys["owner"])
    pub = load_public_key(keys["owner_pub"])
    assert data[:8] == SIGNED_MAGIC and data[8] == 1 and data[9:41].hex() == key_id(pub)
    pub.verify(data[41:105], b"secquant/artifact/v1\x00" + data[:41] + data[105:])


def test_key_id_is_sha256_of_the_raw_public_key() -> None:
    """RFC 8032 test 1: this secret key has public key d75a98...511a."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key_id(sk.public_key()) == hashlib.sha256(pub).hexdigest() == key_id(load_public_key(pub))


def test_sign_and_verify_published_bytes(keys) -> None:  # type: ignore[no-untyped-def]
    spec = encode_artifact("secquant.PlainClientSpec", 1, {"scheme": "plain"}, {})
    sig = sign_bytes(spec, keys["owner"], context="client-spec/v1")
    record = json.loads(json.dumps(sig.to_json()))
    from secquant.signing import Signature

    assert verify_bytes(spec, Signature.from_json(record), [keys["owner_pub"]], context="client-spec/v1") == sig.key_id
    substituted = encode_artifact("secquant.PlainClientSpec", 1, {"scheme": "plain", "x": 1}, {})
    with pytest.raises(IntegrityError, match="bad signature"):
        verify_bytes(substituted, sig, [keys["owner_pub"]], context="client-spec/v1")
    with pytest.raises(IntegrityError, match="made for"):
        verify_bytes(spec, sig, [keys["owner_pub"]])
    with pytest.raises(IntegrityError, match="unknown key"):
        verify_bytes(spec, sig, [keys["thief_pub"]], context="client-spec/v1")
    signed_spec = protect_artifact(spec, sign_with=keys["owner"])  # the artifact form of the same protection
    assert read_artifact(signed_spec, "secquant.PlainClientSpec", trusted=keys["owner_pub"])[1]["scheme"] == "plain"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secquant", "keys", *args], check=False, capture_output=True, text=True, timeout=120)


def test_keys_cli_writes_pairs_and_model_keys_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "k"
    r = _cli("new", "--out", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["signing.key", "signing.pub"] and "pub" in files[1]
    assert stat.S_IMODE((out / "signing.key").stat().st_mode) == 0o600
    before = (out / "signing.key").read_bytes()
    r = _cli("new", "--out", str(out))
    assert r.returncode == 2 and "exists" in r.stderr and (out / "signing.key").read_bytes() == before
    r = _cli("model-key", "--out", str(out / "model.key"))
    assert r.returncode == 0, r.stderr
    assert len((out / "model.key").read_bytes()) == 32 and stat.S_IMODE((out / "model.key").stat().st_mode) == 0o600
    assert _cli("model-key", "--out", str(out / "model.key")).returncode == 2
    ids = [_cli("id", str(out / n)).stdout.split()[-1] for n in ("signing.key", "signing.pub", "model.key")]
    assert ids[0] == ids[1] == key_id(load_public_key(out / "signing.pub"))
    assert ids[2] == ModelKey.from_file(out / "model.key").key_id
