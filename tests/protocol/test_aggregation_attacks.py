"""Issue 14's attacks on secure aggregation, each by a real dishonest party on 127.0.0.1; each must fail to cheat.

Against the baseline (commit 92a1e70) every one of them succeeded
(``protocols/secure-aggregation.md``, "Attacks and their tests"):

1. a token holder submitted under another client's id (200; the real client got 409);
2. a token holder opened a round with its own config and closed the key-holder's round (200, 200);
3. clients took a 512-bit key, the insecure opt-in and σ = 0.5 from the aggregator;
4. one attacker submitted as 2 of 3 clients with zero noise: the release was one
   update plus one noise share, accounted as 3 shares (ε 1.19 claimed, 2.18 real);
5. a relaying aggregator served its own public key and read all 3 updates bit for bit;
   another relayed the product alice² · carol (bob dropped) and the key-holder released it;
6. the noise came from NumPy's PCG64 (seed recoverable from outputs), and any caller rng was accepted.

Oracles: HTTP statuses and error classes, the aggregator's own account of
contributors, a spy on the client's encryption (nothing is encrypted for a
refused round), the key-holder's refusal, and a known-answer reconstruction of
a client's noise from the only entropy it may use.  Deterministic except for
key generation; no statistical assertion.
"""

from __future__ import annotations

import base64
import inspect
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import fields

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from secquant.dp.samplers import secure_generator
from secquant.errors import ConfigError
from secquant.protocol.aggregation import AggregationClient, ClientPolicy, KeyHolder, RoundConfig, RoundPolicyError
from secquant.protocol.aggregation.credentials import COMMAND_CONTEXT, ROUND_CONTEXT, sign_body
from secquant.protocol.aggregation.encoding import (
    ciphertext_width,
    decode_ciphertexts,
    encode_ciphertexts,
    encode_updates,
    noise_shares,
)
from secquant.protocol.aggregation.messages import AGGREGATE, FRAME_VERSION, SUBMISSION, RoundState
from secquant.protocol.aggregation.table import close_command
from secquant.protocol.errors import AuthenticationError, ReleaseRefusedError
from secquant.protocol.messages import Frame, canonical_json, decode_frame, encode_frame, sha256_hex

from .aggregation_rig import Relay, Rig, encrypt_values, forge_submission, serve_aggregator, submission_body

PARTIES = ["alice", "bob", "carol", "mallory"]
#: The baseline's sybil experiment: 3 clients, σ = 400 steps of γ = 0.01 -> ε 1.19 with 3 shares, 2.18 with 1.
SYBIL = dict(n_clients=3, dim=20, granularity=1e-2, sigma=400.0, modulus_bits=32)


@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig.make(PARTIES)


@pytest.fixture()
def url(rig: Rig) -> Iterator[str]:
    with serve_aggregator(rig, max_rounds=8) as u:
        yield u


def _cfg(rig: Rig, **kw) -> RoundConfig:
    return RoundConfig(**{**SYBIL, "key_bits": rig.key_holder.key_bits, **kw})


def _status(rig: Rig, url: str, rid: str) -> dict:
    return httpx.get(f"{url}/v1/rounds/{rid}", headers=rig.auth()).json()


@pytest.fixture()
def encrypt_spy(monkeypatch) -> list[int]:
    """Counts the client's encryptions: a refused round must see none."""
    import secquant.protocol.aggregation.client as client_mod

    calls: list[int] = []
    real = client_mod.encrypt_residues

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(client_mod, "encrypt_residues", spy)
    return calls


# 1 -------------------------------------------------------------------------------------------
def test_impersonation_and_unregistered_parties_are_refused(rig, url) -> None:
    cfg = _cfg(rig)
    rid = rig.key_holder.open_round(url, rig.token, cfg)
    mallory, zeros = rig.party_keys["mallory"], np.zeros(20)
    r = forge_submission(rig, url, rid, "bob", mallory, cfg, zeros)  # mallory's key, bob's id
    assert r.status_code == 401 and "not signed by that party's key" in r.json()["detail"]
    eve = ed25519.Ed25519PrivateKey.generate()
    r = forge_submission(rig, url, rid, "eve", eve, cfg, zeros)  # not registered at all
    assert r.status_code == 401 and "not registered" in r.json()["detail"]
    signed_data, signed_tag = encrypt_values(zeros, cfg, rig.key_holder.public_key)
    body = submission_body(rid, "bob", rig.party_keys["bob"], signed_data, signed_tag)  # bob signs these bytes
    frame = decode_frame(body, SUBMISSION, (FRAME_VERSION,))
    other_data, _ = encrypt_values(zeros, cfg, rig.key_holder.public_key)
    swapped = encode_frame(Frame(SUBMISSION, FRAME_VERSION, frame.meta, other_data + signed_tag))
    r = httpx.post(f"{url}/v1/rounds/{rid}/submissions", content=swapped,
                   headers={**rig.auth(), "Content-Type": "application/octet-stream"})
    assert r.status_code == 401  # the signature binds the ciphertexts' digest
    unsigned = encode_frame(Frame(SUBMISSION, FRAME_VERSION, {**frame.meta, "signature": None},
                                  signed_data + signed_tag))
    r = httpx.post(f"{url}/v1/rounds/{rid}/submissions", content=unsigned,
                   headers={**rig.auth(), "Content-Type": "application/octet-stream"})
    assert r.status_code == 401
    assert _status(rig, url, rid)["contributors"] == []
    rig.client(url, "bob").submit(rid, np.full(20, 0.01))  # the real bob is not locked out
    assert _status(rig, url, rid)["contributors"] == ["bob"]


def test_keyholder_reverifies_what_a_malicious_aggregator_hands_it(rig, url) -> None:
    """The aggregator claims a ready round of 3 from alice's lone submission: duplicated, forged or miscounted."""
    cfg = _cfg(rig)
    rid = rig.key_holder.open_round(url, rig.token, cfg)
    mode: dict[str, list] = {"receipts": []}

    def fake_ready(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.endswith("/aggregate"):
            meta = {"round_id": rid, "contributors": PARTIES[:3], "noise_shares": 3, "topups": [],
                    "ciphertexts": cfg.ciphertexts_per_message()}
            tail = canonical_json(mode["receipts"])
            return 200, encode_frame(Frame(AGGREGATE, FRAME_VERSION, {**meta, "receipts_bytes": len(tail)},
                                           mode["payload"] + tail))
        if method == "GET" and path.count("/") == 2 and status == 200:
            return 200, json.dumps({**json.loads(body), "state": "ready"}).encode()
        return status, body

    relay = Relay(url, on_response=fake_ready)
    with relay as evil:
        rig.client(evil, "alice").submit(rid, np.full(20, 0.02))
        sub = decode_frame(relay.seen[0], SUBMISSION, (FRAME_VERSION,))
        split = cfg.ciphertexts_per_message() * ciphertext_width(int(rig.key_holder.public_key.n))
        mode["payload"] = bytes(sub.payload)[:split]
        alice = {k: sub.meta[k] for k in ("party_id", "kind", "shares", "signature")}
        alice["ciphertexts_sha256"] = sha256_hex(mode["payload"])
        alice["tag_ciphertext"] = base64.b64encode(bytes(sub.payload)[split:]).decode()
        forged = [{**alice, "party_id": p} for p in ("bob", "carol")]  # alice's signature under other names
        for receipts, why in (([alice, alice], "appears twice"), ([alice, *forged], "does not verify"),
                              ([alice], "1 noise shares from 1 distinct parties")):
            mode["receipts"] = receipts
            with pytest.raises(ReleaseRefusedError, match=why):
                rig.key_holder.release(evil, rig.token, rid)


def test_keyholder_detects_a_product_that_drops_or_repeats_a_submission(rig, url) -> None:
    """All three receipts are genuine, but the relayed sum is alice² · carol: bob's update (and noise) is gone."""
    cfg, n = _cfg(rig), int(rig.key_holder.public_key.n)
    count, width = cfg.ciphertexts_per_message(), ciphertext_width(n)
    plan: dict[str, list[int]] = {}

    def recompute(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if not (path.endswith("/aggregate") and status == 200):
            return status, body
        frame = decode_frame(body, AGGREGATE, (FRAME_VERSION,))
        data = {decode_frame(b, SUBMISSION, (FRAME_VERSION,)).meta["party_id"]:
                decode_ciphertexts(decode_frame(b, SUBMISSION, (FRAME_VERSION,)).payload[:count * width], n, count)
                for b in relay.seen}
        product = [1] * count
        for pid in plan["order"]:
            product = [p * c % (n * n) for p, c in zip(product, data[pid], strict=True)]
        payload = encode_ciphertexts(product, n) + bytes(frame.payload)[count * width:]
        return 200, encode_frame(Frame(AGGREGATE, FRAME_VERSION, frame.meta, payload))

    for order, cheat in ((["alice", "bob", "carol"], False), (["alice", "alice", "carol"], True)):
        relay = Relay(url, on_response=recompute)
        plan["order"] = order
        with relay as evil:
            rid = rig.key_holder.open_round(evil, rig.token, cfg)
            clients = [rig.client(evil, pid) for pid in ("alice", "bob", "carol")]
            for c in clients:
                c.submit(rid, np.full(20, 0.02))
            if not cheat:  # control: the relay's own product is the honest one, and it is released
                release = rig.key_holder.release(evil, rig.token, rid)
                total = sum(c.revealed["update"] + c.revealed["noise"] for c in clients)
                np.testing.assert_array_equal(release.residues, np.mod(total, cfg.modulus))
                continue
            with pytest.raises(ReleaseRefusedError, match="integrity tags differ"):
                rig.key_holder.release(evil, rig.token, rid)
            with pytest.raises(ReleaseRefusedError, match="decrypted at most once"):
                rig.key_holder.release(evil, rig.token, rid)


# 2 -------------------------------------------------------------------------------------------
def test_only_the_keyholder_opens_and_closes_rounds(rig, url) -> None:
    kh, cfg = rig.key_holder, _cfg(rig)
    ann, record = kh.announce(cfg)
    forged = sign_body(ann.to_bytes(), rig.party_keys["mallory"], ROUND_CONTEXT)  # a party signs a round
    post = lambda body: httpx.post(f"{url}/v1/rounds", json=body, headers=rig.auth())  # noqa: E731
    assert post(forged).status_code == 401
    tampered = {**record, "body": base64.b64encode(ann.to_bytes().replace(b'"sigma":400.0', b'"sigma":0.5')).decode()}
    assert post(tampered).status_code == 401
    pk = base64.b64encode(kh.public_key.to_bytes()).decode()
    assert post({"config": cfg.to_json(), "public_key": pk}).status_code == 422  # the old token-only form
    expired, old = kh.announce(cfg, ttl=0.05)
    time.sleep(0.1)
    assert post(old).status_code == 401
    assert post(record).status_code == 200
    assert post(record).status_code == 409  # a replayed announcement opens nothing
    rid = ann.round_id
    close = f"{url}/v1/rounds/{rid}/close"
    by_mallory = sign_body(close_command(rid, RoundState.COLLECTING), rig.party_keys["mallory"], COMMAND_CONTEXT)
    assert httpx.post(close, json=by_mallory, headers=rig.auth()).status_code == 401
    assert httpx.post(close, headers=rig.auth()).status_code == 422  # a bare token closes nothing
    other = sign_body(close_command("z" * 22, RoundState.COLLECTING), rig.kh_key, COMMAND_CONTEXT)
    assert httpx.post(close, json=other, headers=rig.auth()).status_code == 400
    assert _status(rig, url, rid)["state"] == "collecting"
    real = sign_body(close_command(rid, RoundState.COLLECTING), rig.kh_key, COMMAND_CONTEXT)
    assert httpx.post(close, json=real, headers=rig.auth()).json()["state"] == "refused"  # 0 of 3 parties
    assert httpx.post(close, json=real, headers=rig.auth()).status_code == 409  # a replay does nothing


# 3 -------------------------------------------------------------------------------------------
def test_clients_apply_their_own_floors_before_encrypting(rig, url, encrypt_spy) -> None:
    weak_kh = KeyHolder(rig.kh_key, rig.key_holder.parties, 512, allow_insecure_key_bits=True)
    weak = RoundConfig(**{**SYBIL, "sigma": 0.5, "modulus_bits": 16}, key_bits=512, allow_insecure_key_bits=True)
    rid = weak_kh.open_round(url, rig.token, weak)  # signed by the real key-holder key: only the floor stops it
    for policy in (ClientPolicy(), ClientPolicy(min_key_bits=2048)):
        with pytest.raises(RoundPolicyError, match="floor"):
            rig.client(url, "carol", policy=policy).submit(rid, np.full(20, 0.1))
    strong = rig.key_holder.open_round(url, rig.token, _cfg(rig))  # 2048 bits: below the default 3072 floor
    with pytest.raises(RoundPolicyError, match="floor is 3072"):
        rig.client(url, "carol", policy=ClientPolicy()).submit(strong, np.full(20, 0.1))
    with pytest.raises(RoundPolicyError, match="ceiling is 1"):  # ε 1.19 > the client's own ceiling
        rig.client(url, "carol", policy=ClientPolicy(min_key_bits=2048, max_epsilon=1.0)).submit(strong, np.zeros(20))
    assert encrypt_spy == [] and _status(rig, url, rid)["contributors"] == []

    def lower_sigma(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and path.count("/") == 2 and status == 200:
            st = json.loads(body)
            raw = base64.b64decode(st["announcement"]["body"]).replace(b'"sigma":400.0', b'"sigma":0.5')
            st["announcement"]["body"] = base64.b64encode(raw).decode()
            return 200, json.dumps(st).encode()
        return status, body

    with Relay(url, on_response=lower_sigma) as evil:
        with pytest.raises(AuthenticationError, match="refused a record"):
            rig.client(evil, "carol").submit(strong, np.full(20, 0.1))
    assert encrypt_spy == []
    # the small-key opt-out exists, but only as the client's own explicit choice
    own_opt_out = ClientPolicy(min_key_bits=512, allow_insecure_key_bits=True)
    rig.client(url, "carol", policy=own_opt_out).submit(rid, np.zeros(20))
    assert encrypt_spy == [1] and _status(rig, url, rid)["contributors"] == ["carol"]


# 4 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["top_up", "refuse"])
def test_sybil_cannot_stand_for_two_parties(rig, url, policy: str) -> None:
    """Mallory (a registered party) tries to be 2 of 3 clients with zero noise; the release is refused."""
    cfg = _cfg(rig, dropout_policy=policy)
    assert cfg.epsilon() == pytest.approx(1.19, abs=0.01) and cfg.epsilon(1) == pytest.approx(2.18, abs=0.01)
    kh = rig.key_holder
    rid = kh.open_round(url, rig.token, cfg)
    alice = rig.client(url, "alice")
    alice.submit(rid, np.random.default_rng(4).normal(scale=0.02, size=20))
    mallory, zeros = rig.party_keys["mallory"], np.zeros(20, dtype=np.int64)
    assert forge_submission(rig, url, rid, "mallory", mallory, cfg, zeros).status_code == 200  # zero noise
    r = forge_submission(rig, url, rid, "mallory", mallory, cfg, zeros)
    assert r.status_code == 409 and "one submission per party" in r.json()["detail"]
    assert forge_submission(rig, url, rid, "sybil-2", mallory, cfg, zeros).status_code == 401
    assert forge_submission(rig, url, rid, "carol", mallory, cfg, zeros).status_code == 401
    assert sorted(_status(rig, url, rid)["contributors"]) == ["alice", "mallory"]
    with httpx.Client(base_url=url, headers=rig.auth()) as http:
        state = kh.close_round(http, rid, RoundState.COLLECTING)["state"]
    if state == "topup":  # only without the distinct-party minimum: alice's honest top-up would make it "ready"
        alice.top_up(rid)
    with pytest.raises(ReleaseRefusedError, match="2 distinct parties"):  # 2 real shares never pass for 3
        kh.release(url, rig.token, rid, topup_wait=0.2)


# 5 -------------------------------------------------------------------------------------------
def test_aggregator_cannot_substitute_its_public_key(rig, url, encrypt_spy) -> None:
    from secquant.backends.paillier.keys import generate_keypair

    evil_paillier, evil_ed = generate_keypair(2048), ed25519.Ed25519PrivateKey.generate()
    rid = rig.key_holder.open_round(url, rig.token, _cfg(rig))

    def substitute(resign: bool):
        def hook(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
            if method == "GET" and path.count("/") == 2 and status == 200:
                st = json.loads(body)
                ann = json.loads(base64.b64decode(st["announcement"]["body"]))
                ann["public_key"] = base64.b64encode(evil_paillier.public.to_bytes()).decode()
                raw = canonical_json(ann)
                st["announcement"] = (sign_body(raw, evil_ed, ROUND_CONTEXT) if resign
                                      else {**st["announcement"], "body": base64.b64encode(raw).decode()})
                return 200, json.dumps(st).encode()
            return status, body
        return hook

    for resign, why in ((False, "bad signature"), (True, "unknown key")):
        relay = Relay(url, on_response=substitute(resign))
        with relay as evil:
            with pytest.raises(AuthenticationError, match=why):
                rig.client(evil, "alice").submit(rid, np.full(20, 0.05))
        assert relay.seen == []
    assert encrypt_spy == []
    honest = Relay(url)  # control: the same relay without rewriting carries a submission
    with honest as relayed:
        rig.client(relayed, "alice").submit(rid, np.full(20, 0.05))
    assert len(honest.seen) == 1 and _status(rig, url, rid)["contributors"] == ["alice"]


# 6 -------------------------------------------------------------------------------------------
def test_noise_comes_only_from_secrets(rig, url, monkeypatch) -> None:
    assert isinstance(secure_generator().bit_generator, np.random.Philox)
    assert not inspect.signature(secure_generator).parameters
    assert not {"rng", "seed"} & set(inspect.signature(AggregationClient).parameters)
    assert not {f.name for f in fields(RoundConfig)} & {"seed", "rng", "noise_seed"}
    with pytest.raises(ConfigError, match="unknown round config fields"):
        RoundConfig.from_json({**_cfg(rig).to_json(), "seed": 0})
    cfg, update = _cfg(rig), np.full(20, 0.013)
    rid = rig.key_holder.open_round(url, rig.token, cfg)
    a, b = rig.client(url, "alice"), rig.client(url, "bob")
    a.submit(rid, update)
    b.submit(rid, update)
    assert not np.array_equal(a.revealed["noise"], b.revealed["noise"])  # two parties, two streams
    # Known answer: with secrets.randbits pinned, a client's rounding and noise are exactly
    # Philox(SeedSequence(pinned)) -- in two different rounds, so nothing else feeds them.
    pinned = secrets.randbits(256)
    monkeypatch.setattr(secrets, "randbits", lambda k: pinned)
    expect_rng = np.random.Generator(np.random.Philox(np.random.SeedSequence(pinned)))
    expect_q = encode_updates(update, cfg, expect_rng)[0]
    expect_z = noise_shares(cfg, 1, expect_rng)[0]
    for pid in ("carol", "mallory"):
        other = rig.key_holder.open_round(url, rig.token, cfg)
        c = rig.client(url, pid)
        c.submit(other, update)
        np.testing.assert_array_equal(c.revealed["noise"], expect_z)
        np.testing.assert_array_equal(c.revealed["update"], expect_q)
