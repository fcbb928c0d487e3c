"""Secure aggregation over a real aggregator on 127.0.0.1, with a real 2048-bit Paillier key and Ed25519 parties.

Oracles: the release equals the plaintext sum of the parties' quantized updates
plus their noise, to the bit (test-only noise reveal); the documented status
for each bad input; the auditor for the noise (statistical, see its test).
The attacks of issue 14 are in ``test_aggregation_attacks.py``.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from secquant.errors import ConfigError
from secquant.protocol.aggregation import AggregationClient, KeyHolder, PartyList, RoundConfig
from secquant.protocol.aggregation.app import AggregatorConfig
from secquant.protocol.aggregation.credentials import ROUND_CONTEXT, RoundAnnouncement, sign_body
from secquant.protocol.errors import ReleaseRefusedError, RemoteError

from .aggregation_rig import Rig, encrypt_values, serve_aggregator, submission_body

N, DIM = 10, 300
PARTIES = [f"client-{i:02d}" for i in range(N)]


@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig.make(PARTIES)


@pytest.fixture()
def aggregator(rig: Rig) -> Iterator[str]:
    with serve_aggregator(rig, max_request_bytes=1 << 20, max_rounds=4) as url:
        yield url


def _config(kh: KeyHolder, **kw) -> RoundConfig:
    base = dict(n_clients=N, dim=DIM, clip_norm=1.0, granularity=1e-3, sigma=20.0, modulus_bits=24,
                key_bits=kh.key_bits)
    return RoundConfig(**{**base, **kw})


def _clients(rig: Rig, url: str, n: int) -> list[AggregationClient]:
    return [rig.client(url, pid) for pid in PARTIES[:n]]


def _submit_all(clients: list[AggregationClient], rid: str, updates: np.ndarray) -> None:
    errors: list[BaseException] = []

    def run(c: AggregationClient, u: np.ndarray) -> None:
        try:
            c.submit(rid, u)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c, updates[i])) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def _updates(n: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(7).normal(scale=0.03, size=(n, dim))


def test_ten_parties_release_is_sum_plus_noise_to_the_bit(aggregator, rig) -> None:
    kh = rig.key_holder
    cfg = _config(kh)
    rid = kh.open_round(aggregator, rig.token, cfg)
    clients, updates = _clients(rig, aggregator, N), _updates(N)
    _submit_all(clients, rid, updates)
    release = kh.release(aggregator, rig.token, rid)
    q = sum(c.revealed["update"] for c in clients)
    z = sum(c.revealed["noise"] for c in clients)
    np.testing.assert_array_equal(release.residues, np.mod(q + z, cfg.modulus))
    np.testing.assert_array_equal(np.mod(release.residues - z, cfg.modulus), np.mod(q, cfg.modulus))
    assert release.noise_shares == N and sorted(release.contributors) == PARTIES
    assert release.epsilon == pytest.approx(cfg.epsilon())
    # the quantized updates are the clipped floats within rounding
    assert np.abs(q * cfg.granularity - updates.sum(0)).max() <= N * cfg.granularity
    with pytest.raises(ReleaseRefusedError, match="already released"):
        kh.release(aggregator, rig.token, rid)


def test_dropouts_top_up_restores_the_noise(aggregator, rig) -> None:
    kh = rig.key_holder
    cfg = _config(kh, min_parties=7)  # survivors' top-ups may count once 7 distinct parties are in
    rid = kh.open_round(aggregator, rig.token, cfg)
    clients = _clients(rig, aggregator, 7)  # 3 of 10 drop out
    _submit_all(clients, rid, _updates(7))
    with httpx.Client(base_url=aggregator, headers=rig.auth()) as http:
        from secquant.protocol.aggregation.messages import RoundState

        status = kh.close_round(http, rid, RoundState.COLLECTING)
    assert status["state"] == "topup" and sum(status["topup_assignments"].values()) == 3
    assert sum(c.top_up(rid) for c in clients) == 3
    release = kh.release(aggregator, rig.token, rid)
    assert release.noise_shares == N and len(release.contributors) == 7
    total = sum(c.revealed["update"] + c.revealed["noise"] + c.revealed.get("topup", 0) for c in clients)
    np.testing.assert_array_equal(release.residues, np.mod(total, cfg.modulus))


def test_too_few_parties_are_refused_even_with_top_up(aggregator, rig) -> None:
    kh = rig.key_holder
    rid = kh.open_round(aggregator, rig.token, _config(kh, n_clients=4, dim=20))  # min_parties = 4 by default
    _submit_all(_clients(rig, aggregator, 3), rid, _updates(3, 20))
    with pytest.raises(ReleaseRefusedError, match="only 3 distinct parties contributed; the round needs 4"):
        kh.release(aggregator, rig.token, rid)


def test_dropouts_refuse_policy_never_decrypts(aggregator, rig) -> None:
    kh = rig.key_holder
    rid = kh.open_round(aggregator, rig.token, _config(kh, dropout_policy="refuse", min_parties=1))
    _submit_all(_clients(rig, aggregator, 9), rid, _updates(9))
    with pytest.raises(ReleaseRefusedError, match="carry 9 < 10 noise shares"):
        kh.release(aggregator, rig.token, rid)
    r = httpx.get(f"{aggregator}/v1/rounds/{rid}/aggregate", headers=rig.auth())
    assert r.status_code == 409 and "refused" in r.json()["detail"]


def test_incomplete_top_up_is_refused(aggregator, rig) -> None:
    kh = rig.key_holder
    rid = kh.open_round(aggregator, rig.token, _config(kh, n_clients=4, dim=20, min_parties=2))
    _submit_all(_clients(rig, aggregator, 2), rid, _updates(2, 20))
    with pytest.raises(ReleaseRefusedError, match="top-up incomplete"):
        kh.release(aggregator, rig.token, rid, topup_wait=0.2)  # nobody tops up


def test_tolerated_dropouts_need_no_top_up(aggregator, rig) -> None:
    kh = rig.key_holder
    cfg = _config(kh, n_clients=4, dim=20, min_noise_shares=3)
    rid = kh.open_round(aggregator, rig.token, cfg)
    _submit_all(_clients(rig, aggregator, 3), rid, _updates(3, 20))
    release = kh.release(aggregator, rig.token, rid)
    assert release.noise_shares == 3 and release.epsilon == pytest.approx(cfg.epsilon())


def test_bad_submissions_are_4xx(aggregator, rig) -> None:
    kh = rig.key_holder
    cfg = _config(kh, n_clients=2, dim=20)
    rid = kh.open_round(aggregator, rig.token, cfg)
    auth = {**rig.auth(), "Content-Type": "application/octet-stream"}
    payload, tag = encrypt_values(np.zeros(20), cfg, kh.public_key)
    key = rig.party_keys[PARTIES[0]]

    def body(data: bytes = payload, seed: bytes = tag, **kw) -> bytes:
        return submission_body(rid, PARTIES[0], key, data, seed, **kw)

    post = lambda b, r=rid: httpx.post(f"{aggregator}/v1/rounds/{r}/submissions", content=b, headers=auth)  # noqa: E731
    assert post(body(payload[:-5])).status_code == 400  # truncated ciphertexts (signed as they are)
    assert post(body(seed=b"")).status_code == 400  # no encrypted tag seed
    assert post(body()[:-5]).status_code == 400  # truncated frame
    r = post(body(bytes(len(payload))))  # zeros: not ciphertexts under this key
    assert r.status_code == 400 and "not a Paillier ciphertext" in r.json()["detail"]
    assert post(body(kind="other")).status_code == 400
    assert post(body(version=1)).status_code == 400  # the unsigned v1 format is gone
    assert post(body(shares=2)).status_code == 400  # an update is one share
    assert post(body(), "no-such-round").status_code == 404
    assert post(bytes(2 << 20)).status_code == 413
    assert httpx.post(f"{aggregator}/v1/rounds/{rid}/submissions", content=body()).status_code == 401
    assert post(body()).status_code == 200
    r = post(body())
    assert r.status_code == 409 and "already submitted" in r.json()["detail"]
    # opening: a config the key-holder signed but that is invalid, and a private key as "public key"
    ann = RoundAnnouncement("x" * 22, cfg, kh.public_key.to_bytes(), kh.parties, 0.0, 4e9)
    raw = ann.to_bytes().replace(b'"dim":20', b'"dim":0')
    r = httpx.post(f"{aggregator}/v1/rounds", json=sign_body(raw, rig.kh_key, ROUND_CONTEXT), headers=rig.auth())
    assert r.status_code == 422 and "dim" in r.json()["detail"]
    leaked = RoundAnnouncement("y" * 22, cfg, kh._private_key.to_bytes(), kh.parties, 0.0, 4e9)
    r = httpx.post(f"{aggregator}/v1/rounds", json=sign_body(leaked.to_bytes(), rig.kh_key, ROUND_CONTEXT),
                   headers=rig.auth())
    assert r.status_code == 403 and r.json()["error"] == "KeyMaterialError"  # the aggregator never holds the key
    with pytest.raises(RemoteError) as info:
        rig.client(aggregator, PARTIES[0]).submit(rid, np.zeros(20))
    assert info.value.status == 409


def test_config_refuses_wraparound_weak_keys_and_missing_trust(rig) -> None:
    with pytest.raises(ConfigError, match="wrap|modulus_bits|holds only"):
        RoundConfig(n_clients=100, dim=10, granularity=1e-4, modulus_bits=16)
    with pytest.raises(ConfigError, match="key_bits"):
        RoundConfig(n_clients=2, dim=2, key_bits=1024)
    with pytest.raises(ConfigError, match="min_parties"):
        RoundConfig(n_clients=2, dim=2, min_parties=3)
    assert RoundConfig(n_clients=5, dim=2, min_noise_shares=3).required_parties == 3
    with pytest.raises(ConfigError, match="key_bits"):
        KeyHolder(rig.kh_key, rig.key_holder.parties, 1024)
    with pytest.raises(ConfigError, match="key-holder's Ed25519 public key"):
        AggregatorConfig(token="t" * 20)
    with pytest.raises(ConfigError, match="own key pair"):
        PartyList({"a": b"k" * 32, "b": b"k" * 32})
    with pytest.raises(ConfigError, match="party id"):
        PartyList({"../etc": b"k" * 32})
    announced = sign_body(b"{}", rig.kh_key, ROUND_CONTEXT)
    assert base64.b64decode(announced["body"]) == b"{}"


def test_party_list_file_round_trip(tmp_path, rig) -> None:
    path = rig.key_holder.parties.write(tmp_path / "parties.json")
    assert PartyList.read(path) == rig.key_holder.parties
    from secquant.signing import generate_signing_keys

    _, pub = generate_signing_keys(tmp_path, "alice")
    listed = PartyList.from_public_keys({"alice": pub})
    assert len(listed.parties["alice"]) == 32
    (tmp_path / "bad.json").write_text('{"type": "other", "version": 1, "parties": {}}')
    with pytest.raises(ConfigError, match="not a secquant.aggregation.PartyList"):
        PartyList.read(tmp_path / "bad.json")
