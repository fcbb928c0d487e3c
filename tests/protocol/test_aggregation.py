"""Secure aggregation over a real aggregator on 127.0.0.1, with a real (small, test-only) Paillier key.

Oracles: the release equals the plaintext sum of the clients' quantized updates
plus their noise, to the bit (test-only noise reveal); the documented status
for each bad input; the auditor for the noise (statistical, see its test).
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from secquant.errors import ConfigError
from secquant.protocol.aggregation import AggregationClient, KeyHolder, RoundConfig
from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
from secquant.protocol.aggregation.encoding import encode_ciphertexts, encrypt_residues
from secquant.protocol.aggregation.messages import SUBMISSION
from secquant.protocol.errors import ReleaseRefusedError, RemoteError
from secquant.protocol.messages import Frame, encode_frame
from secquant.protocol.runner import ServerThread

N, DIM = 10, 300


@pytest.fixture(scope="module")
def key_holder() -> KeyHolder:
    return KeyHolder(2048)  # the smallest secure size; 3072 is the default


@pytest.fixture()
def aggregator() -> Iterator[tuple[str, str]]:
    token = secrets.token_urlsafe(24)
    app = create_aggregator_app(AggregatorConfig(token=token, max_request_bytes=1 << 20, max_rounds=4))
    with ServerThread(app) as server:
        yield server.url, token


def _config(kh: KeyHolder, **kw) -> RoundConfig:
    base = dict(n_clients=N, dim=DIM, clip_norm=1.0, granularity=1e-3, sigma=20.0, modulus_bits=24,
                key_bits=kh.key_bits)
    return RoundConfig(**{**base, **kw})


def _clients(url: str, token: str, n: int) -> list[AggregationClient]:
    return [AggregationClient(url, token, f"client-{i:02d}", rng=np.random.default_rng(100 + i),
                              reveal_noise_for_testing=True) for i in range(n)]


def _submit_all(clients: list[AggregationClient], rid: str, updates: np.ndarray) -> None:
    threads = [threading.Thread(target=c.submit, args=(rid, updates[i])) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def _updates(n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(scale=0.03, size=(n, DIM))


def test_ten_clients_release_is_sum_plus_noise_to_the_bit(aggregator, key_holder) -> None:
    url, token = aggregator
    cfg = _config(key_holder)
    rid = key_holder.open_round(url, token, cfg)
    clients, updates = _clients(url, token, N), _updates(N)
    _submit_all(clients, rid, updates)
    release = key_holder.release(url, token, rid)
    q = sum(c.revealed["update"] for c in clients)
    z = sum(c.revealed["noise"] for c in clients)
    np.testing.assert_array_equal(release.residues, np.mod(q + z, cfg.modulus))
    np.testing.assert_array_equal(np.mod(release.residues - z, cfg.modulus), np.mod(q, cfg.modulus))
    assert release.noise_shares == N and sorted(release.contributors) == [c.client_id for c in clients]
    assert release.epsilon == pytest.approx(cfg.epsilon())
    # the quantized updates are the clipped floats within rounding
    assert np.abs(q * cfg.granularity - updates.sum(0)).max() <= N * cfg.granularity
    with pytest.raises(ReleaseRefusedError, match="already released"):
        key_holder.release(url, token, rid)


def test_dropouts_top_up_restores_the_noise(aggregator, key_holder) -> None:
    url, token = aggregator
    cfg = _config(key_holder)
    rid = key_holder.open_round(url, token, cfg)
    clients = _clients(url, token, 7)  # 3 of 10 drop out
    _submit_all(clients, rid, _updates(7))
    status = httpx.post(f"{url}/v1/rounds/{rid}/close", headers={"Authorization": f"Bearer {token}"}).json()
    assert status["state"] == "topup" and sum(status["topup_assignments"].values()) == 3
    assert sum(c.top_up(rid) for c in clients) == 3
    release = key_holder.release(url, token, rid)
    assert release.noise_shares == N
    total = sum(c.revealed["update"] + c.revealed["noise"] + c.revealed.get("topup", 0) for c in clients)
    np.testing.assert_array_equal(release.residues, np.mod(total, cfg.modulus))


def test_dropouts_refuse_policy_never_decrypts(aggregator, key_holder) -> None:
    url, token = aggregator
    rid = key_holder.open_round(url, token, _config(key_holder, dropout_policy="refuse"))
    _submit_all(_clients(url, token, 9), rid, _updates(9))
    with pytest.raises(ReleaseRefusedError, match="carry 9 < 10 noise shares"):
        key_holder.release(url, token, rid)
    r = httpx.get(f"{url}/v1/rounds/{rid}/aggregate", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 409 and "refused" in r.json()["detail"]


def test_incomplete_top_up_is_refused(aggregator, key_holder) -> None:
    url, token = aggregator
    rid = key_holder.open_round(url, token, _config(key_holder, n_clients=4, dim=20))
    clients = _clients(url, token, 2)
    _submit_all(clients, rid, _updates(2)[:, :20])
    with pytest.raises(ReleaseRefusedError, match="top-up incomplete"):
        key_holder.release(url, token, rid, topup_wait=0.2)  # nobody tops up


def test_tolerated_dropouts_need_no_top_up(aggregator, key_holder) -> None:
    url, token = aggregator
    cfg = _config(key_holder, n_clients=4, dim=20, min_noise_shares=3)
    rid = key_holder.open_round(url, token, cfg)
    clients = _clients(url, token, 3)
    _submit_all(clients, rid, _updates(3)[:, :20])
    release = key_holder.release(url, token, rid)
    assert release.noise_shares == 3 and release.epsilon == pytest.approx(cfg.epsilon())


def test_bad_submissions_are_4xx(aggregator, key_holder) -> None:
    url, token = aggregator
    cfg = _config(key_holder, n_clients=2, dim=20)
    rid = key_holder.open_round(url, token, cfg)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    cts = encrypt_residues(np.zeros(20, dtype=np.int64), cfg, key_holder.public_key)
    payload = encode_ciphertexts(cts, int(key_holder.public_key.n))

    def body(meta: dict, data: bytes = payload) -> bytes:
        return encode_frame(Frame(SUBMISSION, 1, {"round_id": rid, "client_id": "a", "kind": "update", **meta}, data))

    post = lambda b, r=rid: httpx.post(f"{url}/v1/rounds/{r}/submissions", content=b, headers=auth)  # noqa: E731
    assert post(body({}, payload[:-5])).status_code == 400  # truncated ciphertexts
    assert post(body({})[:-5]).status_code == 400  # truncated frame
    r = post(body({}, bytes(len(payload))))  # zeros: not ciphertexts under this key
    assert r.status_code == 400 and "not a Paillier ciphertext" in r.json()["detail"]
    assert post(body({"kind": "other"})).status_code == 400
    assert post(body({}), "no-such-round").status_code == 404
    assert post(bytes(2 << 20)).status_code == 413
    assert httpx.post(f"{url}/v1/rounds/{rid}/submissions", content=body({})).status_code == 401
    assert post(body({})).status_code == 200
    r = post(body({}))
    assert r.status_code == 409 and "already submitted" in r.json()["detail"]
    pk = base64.b64encode(key_holder.public_key.to_bytes()).decode()
    r = httpx.post(f"{url}/v1/rounds", json={"config": {**cfg.to_json(), "dim": 0}, "public_key": pk},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "dim" in r.json()["detail"]
    secret = base64.b64encode(key_holder._private_key.to_bytes()).decode()
    r = httpx.post(f"{url}/v1/rounds", json={"config": cfg.to_json(), "public_key": secret},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"] == "KeyMaterialError"  # the aggregator never holds the key
    with pytest.raises(RemoteError) as info:
        AggregationClient(url, token, "a").submit(rid, np.zeros(20))
    assert info.value.status == 409


def test_config_refuses_wraparound_and_weak_keys() -> None:
    with pytest.raises(ConfigError, match="wrap|modulus_bits|holds only"):
        RoundConfig(n_clients=100, dim=10, granularity=1e-4, modulus_bits=16)
    with pytest.raises(ConfigError, match="key_bits"):
        RoundConfig(n_clients=2, dim=2, key_bits=1024)
    with pytest.raises(ConfigError, match="key_bits"):
        KeyHolder(1024)
