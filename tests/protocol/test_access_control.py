"""Issue 13 §4: tokens with identities and scopes, stored as hashes; budgets, rate limits, privacy accounting.

Real servers on 127.0.0.1 with real (plain and Paillier) sessions.  Oracles:
the documented status codes, ``Retry-After`` headers and messages; the bytes
the server holds (no token in its config or on disk); the closed-form zCDP
count of released inputs a privacy budget allows.  The rate-limit test uses a
fake clock, so it is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from secquant.dp.release import DiscreteGaussianLogits
from secquant.errors import ConfigError
from secquant.protocol import Client
from secquant.protocol.errors import AuthenticationError, RateLimitError, RemoteError
from secquant.protocol.inference import ServiceConfig, TokenRecord, TokenTable, create_app, new_token
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.quotas import QuotaBook
from secquant.protocol.inference.release import zcdp_budget, zcdp_epsilon
from secquant.protocol.inference.tokens import Scope, hash_token
from secquant.protocol.runner import ServerThread

from .conftest import PLAIN_OK

ROOT = Path(__file__).resolve().parents[2]


def _serve(qm, scheme: str, tmp_path: Path, tokens: TokenTable, release=None, **config) -> tuple[ServerThread, ModelBinding]:
    binding = ModelBinding.build(qm, scheme, None, release)
    app = create_app(binding, ServiceConfig(tokens=tokens, cache_dir=str(tmp_path / "keys"), **config))
    return ServerThread(app).start(), binding


def _get(url: str, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"})


def test_server_holds_only_hashes(tmp_path) -> None:
    token, record = new_token("alice", ["infer"])
    assert record.sha256 == hashlib.sha256(token.encode()).hexdigest() and token not in json.dumps(record.to_json())
    config = ServiceConfig(token=secrets.token_urlsafe(32))
    assert config.token is None and len(config.tokens) == 1  # the plaintext is dropped at construction
    table = TokenTable([record])
    assert table.authenticate(f"Bearer {token}").id == "alice"
    for header in (None, "Bearer", f"Basic {token}", f"Bearer {token}x", f"Bearer {token[:-1]}"):
        with pytest.raises(AuthenticationError):
            table.authenticate(header)
    with pytest.raises(ConfigError, match="16 characters"):
        hash_token("short")
    with pytest.raises(ConfigError, match="twice"):
        TokenTable([record, record])


def test_token_file_round_trip_and_permissions(tmp_path) -> None:
    path = tmp_path / "tokens.jsonl"
    records = [new_token("alice", ["infer"], query_budget=10, rate_per_s=2.0)[1],
               new_token("ops", ["admin"], epsilon=2.0)[1]]
    path.write_text("# tokens\n\n" + "\n".join(json.dumps(r.to_json()) for r in records) + "\n")
    path.chmod(0o644)
    table = TokenTable.from_file(path)
    assert [r.id for r in table] == ["alice", "ops"] and next(iter(table)) == records[0]
    path.chmod(0o664)
    with pytest.raises(ConfigError, match="others could add tokens"):
        TokenTable.from_file(path)
    path.chmod(0o600)
    path.write_text('{"id": "x", "scopes": ["infer"], "sha256": "00", "extra": 1}\n')
    with pytest.raises(ConfigError, match=r"tokens.jsonl:1: token record: unknown fields \['extra'\]"):
        TokenTable.from_file(path)


def test_scopes(digits_linear_qm, tmp_path) -> None:
    user, user_record = new_token("user", ["infer"])
    admin, admin_record = new_token("ops", ["admin"])
    server, _ = _serve(digits_linear_qm, "plain", tmp_path, TokenTable([user_record, admin_record]))
    try:
        r = _get(server.url, "/v1/admin/tokens", user)
        assert r.status_code == 403 and r.json()["error"] == "ScopeError"
        r = _get(server.url, "/v1/info", admin)
        assert r.status_code == 403 and "'infer' scope" in r.json()["detail"]
        with Client(server.url, token=user, floor=PLAIN_OK) as client:
            client.forward_int(np.zeros((2, 64), dtype=np.int64))
            r = _get(server.url, "/v1/admin/tokens", admin)
            assert r.status_code == 200
            rows = {row["id"]: row for row in r.json()}
            assert rows["user"]["sessions"] == 1 and rows["user"]["usage"]["queries_in_window"] == 2
            assert "sha256" not in json.dumps(r.json())
    finally:
        server.stop()


def test_query_budget_is_429_with_retry_after(digits_linear_qm, tmp_path) -> None:
    token, record = new_token("alice", ["infer"], query_budget=5, budget_window_s=3600.0)
    server, binding = _serve(digits_linear_qm, "paillier", tmp_path, TokenTable([record]))
    try:
        with Client(server.url, token=token) as client:
            xq = binding.qm.quantize_input(np.zeros((3, 64)))
            client.forward_int(xq)
            with pytest.raises(RemoteError) as info:
                client.forward_int(xq)  # 3 + 3 > 5
            assert info.value.status == 429 and "2 of its 5 queries left" in info.value.detail
            r = httpx.post(f"{server.url}/v1/sessions/{client._session}/evaluate",
                           content=_frame(binding, client._role.encrypt(xq), 3),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
            assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 3600
            np.testing.assert_array_equal(client.forward_int(xq[:2]), binding.qm.forward_int(xq[:2]))  # 5 of 5
    finally:
        server.stop()
    # usage survives a restart: the budget is not reset
    server, _ = _serve(digits_linear_qm, "paillier", tmp_path, TokenTable([record]))
    try:
        with pytest.raises(RemoteError, match="0 of its 5 queries left"):
            with Client(server.url, token=token) as client:
                client.forward_int(xq[:1])
    finally:
        server.stop()


def _frame(binding: ModelBinding, payload: bytes, batch: int) -> bytes:
    from secquant.protocol.messages import EVALUATE_REQUEST, Frame, encode_frame

    return encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": binding.fingerprint, "batch": batch}, payload))


def test_rate_limit_token_bucket() -> None:
    now = [1000.0]
    book = QuotaBook(None, clock=lambda: now[0])
    record = TokenRecord("alice", {Scope.INFER}, "0" * 64, rate_per_s=0.5, burst=2)
    book.admit(record)
    book.admit(record)
    with pytest.raises(RateLimitError) as info:
        book.admit(record)
    assert info.value.retry_after == pytest.approx(2.0)
    now[0] += 2.0
    book.admit(record)  # one token refilled


def test_rate_limit_over_http(digits_linear_qm, tmp_path) -> None:
    token, record = new_token("alice", ["infer"], rate_per_s=0.01, burst=3)
    server, _ = _serve(digits_linear_qm, "plain", tmp_path, TokenTable([record]))
    try:
        assert [_get(server.url, "/v1/info", token).status_code for _ in range(3)] == [200] * 3
        r = _get(server.url, "/v1/info", token)
        assert r.status_code == 429 and r.json()["error"] == "RateLimitError"
        assert 50 <= int(r.headers["retry-after"]) <= 100  # 1 request at 0.01/s
    finally:
        server.stop()


def test_privacy_budget_is_403_when_spent(digits_linear_qm, tmp_path) -> None:
    policy = DiscreteGaussianLogits(8.0, resolution_bits=0, delta=1e-5)
    rho = 10 / (2 * 8.0**2)  # 10 outputs per input, sensitivity 1
    epsilon, delta = 8.0, 1e-6
    allowed = math.floor(zcdp_budget(epsilon, delta) / rho)
    assert allowed == 11
    assert zcdp_epsilon(allowed * rho, delta) <= epsilon < zcdp_epsilon((allowed + 1) * rho, delta)
    token, record = new_token("alice", ["infer"], epsilon=epsilon, delta=delta)
    other, other_record = new_token("bob", ["infer"])  # no privacy budget
    server, binding = _serve(digits_linear_qm, "paillier", tmp_path, TokenTable([record, other_record]), policy)
    try:
        with Client(server.url, token=token) as client:
            xq = binding.qm.quantize_input(np.zeros((allowed, 64)))
            client.forward_int(xq)  # exactly the budget
            with pytest.raises(RemoteError) as info:
                client.forward_int(xq[:1])
            assert info.value.status == 403 and info.value.error == "PrivacyBudgetError"
        with Client(server.url, token=other) as client:  # budgets are per token
            client.forward_int(xq[:1])
    finally:
        server.stop()


def test_tokens_cli_and_serve_tokens(digits_linear_qm, tmp_path) -> None:
    from .test_cli_and_examples import _free_port, _stop, _wait_healthy

    tokens, token_out = tmp_path / "tokens.jsonl", tmp_path / "alice.token"
    run = [sys.executable, "-m", "secquant", "tokens", "new", "--file", str(tokens)]
    out = subprocess.run([*run, "--id", "alice", "--query-budget", "100", "--token-out", str(token_out)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*run, "--id", "ops", "--scope", "admin"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert out.returncode == 0 and "shown once" in out.stderr
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600 and stat.S_IMODE(token_out.stat().st_mode) == 0o600
    token = token_out.read_text().strip()
    assert token not in tokens.read_text() and hash_token(token) in tokens.read_text()
    dup = subprocess.run([*run, "--id", "alice"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert dup.returncode == 2 and "twice" in dup.stderr
    model = tmp_path / "model.npz"
    digits_linear_qm.save(model)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "SECQUANT_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "secquant", "serve", str(model), "--scheme", "paillier",
                             "--tokens", str(tokens), "--release", "gaussian:4", "--port", str(port),
                             "--cache-dir", str(tmp_path / "keys")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        with Client(url, token=token) as client:
            assert client.release["label"] == "dgauss4"
            client.forward_int(np.zeros((2, 64), dtype=np.int64))
    finally:
        _stop(proc)
