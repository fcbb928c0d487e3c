"""The inference service against a real uvicorn server on 127.0.0.1 (plain backend).

Oracle: the local ``em.predict`` / ``qm.forward_int`` of the same model, and the
documented status code and message for each bad input.  No statistics; no
false-failure rate.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import numpy as np
import pytest

from secquant.errors import ConfigError
from secquant.protocol import Client
from secquant.protocol.errors import ParameterMismatchError, RemoteError
from secquant.protocol.inference import ServiceConfig
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.messages import EVALUATE_REQUEST, SESSION_CREATE, Frame, encode_frame

from .conftest import PLAIN_OK, start_server

OCTET = {"Content-Type": "application/octet-stream"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **OCTET}


def test_remote_predict_equals_local(plain_server, digits) -> None:
    url, token, binding = plain_server
    x = digits.x_test[:150]  # 150 > max_batch=64: three requests
    with Client(url, token=token, floor=PLAIN_OK) as client:
        scores = client.predict(x)
        ints = client.forward_int(binding.qm.quantize_input(x[:5]))
    np.testing.assert_array_equal(scores, binding.em.predict(x))
    np.testing.assert_array_equal(ints, binding.qm.forward_int(binding.qm.quantize_input(x[:5])))


def test_client_with_own_model_copy(plain_server, digits, digits_linear_qm) -> None:
    url, token, binding = plain_server
    with Client(url, token=token, model=binding.qm, floor=PLAIN_OK) as client:
        np.testing.assert_array_equal(client.predict(digits.x_test[:3]), binding.em.predict(digits.x_test[:3]))
    with pytest.raises(ParameterMismatchError, match="not the server's"):
        Client(url, token=token, model=digits_linear_qm, floor=PLAIN_OK).open()


def test_session_material_cached_0600(digits_mlp_qm, token, tmp_path: Path) -> None:
    cache = tmp_path / "keys"
    server, _ = start_server(digits_mlp_qm, "plain", token, cache)
    try:
        with Client(server.url, token=token, floor=PLAIN_OK) as client:
            client.predict(np.zeros((1, 64)))
            files = list(cache.glob("*.key"))
            assert len(files) == 1
            assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
            assert client._session not in files[0].name  # the id itself is never on disk
        assert list(cache.glob("*.key")) == []  # deleted with the session
    finally:
        server.stop()


def test_session_survives_restart_and_role_eviction(digits_mlp_qm, token, tmp_path: Path, digits) -> None:
    cache = tmp_path / "keys"
    server, binding = start_server(digits_mlp_qm, "plain", token, cache, max_live_roles=1)
    clients = [Client(server.url, token=token, floor=PLAIN_OK).open() for _ in range(2)]  # second evicts the first role
    x = digits.x_test[:4]
    np.testing.assert_array_equal(clients[0].predict(x), binding.em.predict(x))
    server.stop()
    server, _ = start_server(digits_mlp_qm, "plain", token, cache)
    try:
        for c in clients:
            c._http.base_url = server.url
            np.testing.assert_array_equal(c.predict(x), binding.em.predict(x))
    finally:
        for c in clients:
            c.close()
        server.stop()


# -- access control -------------------------------------------------------------------------------------
def test_missing_or_wrong_token_is_401(plain_server) -> None:
    url, token, _ = plain_server
    assert httpx.get(f"{url}/v1/health").status_code == 200
    r = httpx.get(f"{url}/v1/info")
    assert r.status_code == 401 and "missing" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {token[:-1]}x"})
    assert r.status_code == 401 and r.json()["error"] == "AuthenticationError"
    with pytest.raises(RemoteError) as info:
        Client(url, token="wrong-token-wrong-token", floor=PLAIN_OK).open()
    assert info.value.status == 401


def test_config_refuses_weak_settings() -> None:
    with pytest.raises(ConfigError, match="bearer token"):
        ServiceConfig()
    with pytest.raises(ConfigError, match="16 characters"):
        ServiceConfig(token="short")
    with pytest.raises(ConfigError, match="max_sessions"):
        ServiceConfig(token="x" * 20, max_sessions=0)


def test_tls(digits_mlp_qm, token, tmp_path: Path, digits) -> None:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    from secquant.protocol.inference import create_app
    from secquant.protocol.runner import ServerThread

    binding = ModelBinding.build(digits_mlp_qm, "plain")
    app = create_app(binding, ServiceConfig(token=token, cache_dir=str(tmp_path / "keys")))
    with ServerThread(app, certfile=str(cert), keyfile=str(key)) as server:
        assert server.url.startswith("https://")
        with Client(server.url, token=token, verify=str(cert), floor=PLAIN_OK) as client:
            np.testing.assert_array_equal(client.predict(digits.x_test[:2]), binding.em.predict(digits.x_test[:2]))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v1/health")  # untrusted certificate
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=5)  # no plain HTTP


# -- robustness: one test per bad input --------------------------------------------------------------------
def _session(url: str, token: str, binding: ModelBinding) -> tuple[str, object]:
    role = binding.em.client()
    frame = Frame(SESSION_CREATE, 1, {"scheme": "plain", "model_digest": binding.model_digest,
                                      "fingerprint": binding.fingerprint}, role.public_material())
    r = httpx.post(f"{url}/v1/sessions", content=encode_frame(frame), headers=_auth(token))
    assert r.status_code == 200, r.text
    return r.json()["session_id"], role


def _eval_body(binding: ModelBinding, payload: bytes, fingerprint: str | None = None, batch: int = 1) -> bytes:
    meta = {"fingerprint": fingerprint or binding.fingerprint, "batch": batch}
    return encode_frame(Frame(EVALUATE_REQUEST, 1, meta, payload))


def _still_serves(url: str, token: str, sid: str, role, binding: ModelBinding) -> None:
    xq = binding.qm.quantize_input(np.zeros((1, 64)))
    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=_eval_body(binding, role.encrypt(xq)),
                   headers=_auth(token))
    assert r.status_code == 200, r.text


def test_truncated_ciphertext_is_400(plain_server) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    body = _eval_body(binding, role.encrypt(np.zeros((1, 64), dtype=np.int64)))
    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=body[:-10], headers=_auth(token))
    assert r.status_code == 400 and "truncated" in r.json()["detail"]
    _still_serves(url, token, sid, role, binding)


def test_malformed_ciphertext_is_4xx(plain_server) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    for body, status, words in (
        (b"garbage", 400, "too short"),
        (b"NOPE" + bytes(20), 400, "not a secquant frame"),
        (_eval_body(binding, b"not a ciphertext at all"), 422, "malformed"),
    ):
        r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=body, headers=_auth(token))
        assert r.status_code == status and words in r.json()["detail"], r.text
    _still_serves(url, token, sid, role, binding)


def test_wrong_parameters_is_409(plain_server, digits_linear_qm) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    other = ModelBinding.build(digits_linear_qm, "plain")
    xq = other.qm.quantize_input(np.zeros((1, 64)))
    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=_eval_body(other, other.em.client().encrypt(xq),
                   fingerprint=other.fingerprint), headers=_auth(token))
    assert r.status_code == 409 and "other parameters" in r.json()["detail"]
    frame = Frame(SESSION_CREATE, 1, {"fingerprint": other.fingerprint}, b"257")
    r = httpx.post(f"{url}/v1/sessions", content=encode_frame(frame), headers=_auth(token))
    assert r.status_code == 409
    _still_serves(url, token, sid, role, binding)


def test_oversized_body_is_413(plain_server) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=bytes((1 << 20) + 1), headers=_auth(token))
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield bytes(1 << 15)

    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=chunks(), headers=_auth(token))
    assert r.status_code == 413
    _still_serves(url, token, sid, role, binding)


def test_unknown_session_is_404(plain_server) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    r = httpx.post(f"{url}/v1/sessions/not-a-session/evaluate", content=_eval_body(binding, b""), headers=_auth(token))
    assert r.status_code == 404 and "unknown or expired session" in r.json()["detail"]
    assert httpx.delete(f"{url}/v1/sessions/not-a-session", headers=_auth(token)).status_code == 404
    _still_serves(url, token, sid, role, binding)


def test_batch_too_large_is_400(plain_server) -> None:
    url, token, binding = plain_server
    sid, role = _session(url, token, binding)
    body = _eval_body(binding, role.encrypt(np.zeros((1, 64), dtype=np.int64)), batch=65)
    r = httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=body, headers=_auth(token))
    assert r.status_code == 400 and "split the inputs" in r.json()["detail"]


def test_session_limit_is_429_and_ttl_expires(digits_mlp_qm, token, tmp_path: Path) -> None:
    server, binding = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys", max_sessions=2, session_ttl=1.5)
    try:
        sids = [_session(server.url, token, binding)[0] for _ in range(2)]
        frame = Frame(SESSION_CREATE, 1, {"fingerprint": binding.fingerprint}, b"x")
        r = httpx.post(f"{server.url}/v1/sessions", content=encode_frame(frame), headers=_auth(token))
        assert r.status_code == 429 and "maximum of 2 sessions" in r.json()["detail"]
        import time

        time.sleep(1.6)
        r = httpx.post(f"{server.url}/v1/sessions/{sids[0]}/evaluate", content=_eval_body(binding, b""),
                       headers=_auth(token))
        assert r.status_code == 404  # expired
        _session(server.url, token, binding)  # room again
    finally:
        server.stop()


def test_openapi_document_is_current() -> None:
    import json

    from secquant.protocol.inference import openapi_schema

    path = Path(__file__).resolve().parents[2] / "protocols" / "openapi.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(openapi_schema())), (
        "protocols/openapi.json is stale: regenerate with `python -m secquant.protocol.openapi --write`")


def test_model_is_unpublished_by_default_and_clients_need_no_copy(digits_mlp_qm, token, tmp_path: Path,
                                                                  digits) -> None:
    server, binding = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys")
    try:
        r = httpx.get(f"{server.url}/v1/model", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404 and "does not publish" in r.json()["detail"]
        with Client(server.url, token=token, floor=PLAIN_OK) as client:  # built from GET /v1/client-spec alone
            np.testing.assert_array_equal(client.predict(digits.x_test[:3]), binding.em.predict(digits.x_test[:3]))
        with Client(server.url, token=token, model=digits_mlp_qm, floor=PLAIN_OK) as client:  # a pinned copy still works
            np.testing.assert_array_equal(client.predict(digits.x_test[:3]), binding.em.predict(digits.x_test[:3]))
    finally:
        server.stop()


def test_model_is_published_only_on_opt_in(digits_mlp_qm, token, tmp_path: Path) -> None:
    server, binding = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys", publish_model=True)
    try:
        r = httpx.get(f"{server.url}/v1/model", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.content == binding.artifact
    finally:
        server.stop()


def test_signed_and_encrypted_model_file_is_served(digits_linear_qm, token, tmp_path: Path) -> None:
    """``serve --trusted PUB --model-key FILE``: the binding loads only a signed file, decrypts it, and pins match."""
    from secquant.errors import IntegrityError
    from secquant.sealing import ModelKey
    from secquant.signing import generate_signing_keys

    private, public = generate_signing_keys(tmp_path / "op", "op")
    _, foreign = generate_signing_keys(tmp_path / "other", "other")
    key = ModelKey.generate().write(tmp_path / "model.key")
    path = tmp_path / "model.sqm"
    digits_linear_qm.save(path, sign_with=private, encrypt_with=key)
    binding = ModelBinding.build(path, "plain", load={"trusted": [public], "decrypt_with": key})
    assert binding.model_digest == ModelBinding.build(digits_linear_qm, "plain").model_digest
    with pytest.raises(IntegrityError):
        ModelBinding.build(path, "plain", load={"trusted": [foreign], "decrypt_with": key})
    server, _ = start_server(digits_linear_qm, "plain", token, tmp_path / "keys")
    try:  # the digest a pinning client compares is the same for the protected file and the plain model
        with Client(server.url, token=token, model=digits_linear_qm, floor=PLAIN_OK) as client:
            assert client.service_spec.model_digest == binding.model_digest
    finally:
        server.stop()
