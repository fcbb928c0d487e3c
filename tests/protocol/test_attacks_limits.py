"""Issue 14, attacks 5-7: limits on what is sent, one holder's share, decoder failures, the cache directory.

Each ran against the baseline (commit 92a1e70) and succeeded there:

5. a request declared as batch 1 carried 450 (plain) / 40 (BFV) inputs and was
   evaluated with ``max_batch=4``; three bodies were read into memory while
   one evaluation ran with a concurrency limit of 1; one token holder held
   every session slot; another holder of the token deleted a session by id;
   ``--token`` on argv showed in ``/proc/PID/cmdline``;
6. a header of 30,000 nested ``[`` gave a 500;
7. ``--cache-dir`` chmod-ed an existing 0755 directory to 0700.

Oracles: the documented status codes and messages, the directory mode before
and after, the order of body reads against evaluations, the process's own
command line.  Deterministic (the concurrency test orders events with a
1-second evaluation, far above scheduling noise).
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from secquant.protocol import Client
from secquant.protocol.errors import CacheDirError, MessageError
from secquant.protocol.inference import ServiceConfig, TokenRecord, TokenTable, create_app
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.limits import body_limits
from secquant.protocol.inference.tokens import Scope, hash_token
from secquant.protocol.messages import EVALUATE_REQUEST, Frame, decode_frame, encode_frame
from secquant.protocol.runner import ServerThread

from .conftest import PLAIN_OK, start_server

ROOT = Path(__file__).resolve().parents[2]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}


def _evaluate(url: str, sid: str, token: str, fingerprint: str, payload: bytes, batch: int) -> httpx.Response:
    body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": fingerprint, "batch": batch}, payload))
    return httpx.post(f"{url}/v1/sessions/{sid}/evaluate", content=body, headers=_auth(token), timeout=300)


# -- 5. inputs are counted in the payload ------------------------------------------------------------------------
@pytest.mark.parametrize(("scheme", "floor"), [("plain", PLAIN_OK), ("paillier", None),
                                               pytest.param("bfv", None, marks=pytest.mark.slow)])
def test_declared_batch_must_match_the_payload(scheme, floor, digits_linear_qm, token, tmp_path, digits) -> None:
    server, binding = start_server(digits_linear_qm, scheme, token, tmp_path / "keys", max_batch=4)
    try:
        with Client(server.url, token=token, floor=floor) as client:
            xq = binding.qm.quantize_input(digits.x_test[:40])
            r = _evaluate(server.url, client._session, token, binding.fingerprint, client._role.encrypt(xq[:4]), 1)
            assert r.status_code == 400 and "carries 4 inputs" in r.json()["detail"], r.text
            r = _evaluate(server.url, client._session, token, binding.fingerprint, client._role.encrypt(xq), 1)
            assert r.status_code in (400, 413), r.text  # 40 inputs: past the body limit (Paillier) or the count
            r = _evaluate(server.url, client._session, token, binding.fingerprint, client._role.encrypt(xq[:3]), 3)
            assert r.status_code == 200, r.text  # an honest batch within the limit
            np.testing.assert_array_equal(client._role.decrypt(decode_frame(r.content, "secquant.protocol."
                                                                            "EvaluateResponse").payload),
                                          binding.qm.forward_int(xq[:3]))
    finally:
        server.stop()


def test_bfv_throughput_batches_are_charged_at_capacity(digits_linear_qm) -> None:
    """A throughput batch can hide inputs in unused slots, so it counts as full; extra batches are refused."""
    from secquant.backends.bfv.wire import BATCH, frame_primes, unframe_primes
    from secquant.protocol.inference.limits import payload_inputs

    binding = ModelBinding.build(digits_linear_qm, "bfv", {"mode": "throughput"})
    client = binding.em.client()
    payload = client.encrypt(digits_linear_qm.quantize_input(np.zeros((3, 64))))
    count = payload_inputs(binding, payload)
    n_slots = binding.em.backend.params.poly_degree
    assert (count.inputs, count.charged) == (3, n_slots)
    _, blobs = unframe_primes(BATCH, payload, binding.em.backend.params)
    doubled = frame_primes(BATCH, binding.em.backend.params, 3, [[bytes(b) for b in per] * 2 for per in blobs],
                           {"features": 64, "batches": 2})
    with pytest.raises(MessageError, match="extra batches"):
        payload_inputs(binding, doubled)


def test_bodies_wait_for_a_slot_before_they_are_read(digits_linear_qm, token, tmp_path, monkeypatch) -> None:
    import secquant.protocol.inference.routes as routes

    reads: list[float] = []
    evals: list[tuple[float, float]] = []
    real_read, real_eval = routes.read_body, routes._evaluate

    async def recording_read(request, limit):
        body = await real_read(request, limit)
        reads.append(time.monotonic())
        return body

    def slow_eval(*args):
        t0 = time.monotonic()
        time.sleep(1.0)
        out = real_eval(*args)
        evals.append((t0, time.monotonic()))
        return out

    monkeypatch.setattr(routes, "read_body", recording_read)
    monkeypatch.setattr(routes, "_evaluate", slow_eval)
    server, binding = start_server(digits_linear_qm, "plain", token, tmp_path / "keys", max_concurrent_evaluations=1,
                                   max_concurrent_requests=1)
    try:
        with Client(server.url, token=token, floor=PLAIN_OK) as client:
            reads.clear()
            payload = client._role.encrypt(binding.qm.quantize_input(np.zeros((2, 64))))
            threads = [threading.Thread(target=_evaluate, args=(server.url, client._session, token,
                                                                binding.fingerprint, payload, 2)) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        reads.sort()
        evals.sort()
        assert len(reads) == 3 and len(evals) == 3
        for k in (1, 2):  # body k is read only after evaluation k-1 has finished
            assert reads[k] >= evals[k - 1][1], (reads, evals)
    finally:
        server.stop()


def test_default_body_limit_follows_the_batch_geometry(digits_linear_qm, token, tmp_path) -> None:
    for scheme in ("plain", "paillier", "ckks"):
        binding = ModelBinding.build(digits_linear_qm, scheme)
        limits = body_limits(binding, 1024)
        app = create_app(binding, ServiceConfig(token=token, cache_dir=str(tmp_path / scheme)))
        info = app.state.secquant.info
        assert info["max_request_bytes"] == limits.evaluate <= 256 * 2**20
        assert info["max_material_bytes"] == limits.material and info["max_batch"] == limits.max_batch <= 1024
    server, binding = start_server(digits_linear_qm, "paillier", token, tmp_path / "keys", max_batch=8)
    try:
        with Client(server.url, token=token) as client:
            xq = binding.qm.quantize_input(np.zeros((8, 64)))
            np.testing.assert_array_equal(client.forward_int(xq), binding.qm.forward_int(xq))  # max_batch fits
            limit = client.info["max_request_bytes"]
            assert limit < 2 * 8 * 64 * 768 + 200_000  # 8 inputs x 64 ciphertexts of 768 bytes, plus slack
            r = httpx.post(f"{server.url}/v1/sessions/{client._session}/evaluate", content=bytes(limit + 1),
                           headers=_auth(token))
            assert r.status_code == 413
    finally:
        server.stop()


# -- 5. per-token sessions ---------------------------------------------------------------------------------------
def _two_tokens() -> tuple[str, str, TokenTable]:
    a, b = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    table = TokenTable([TokenRecord("alice", {Scope.INFER}, hash_token(a), max_sessions=2),
                        TokenRecord("bob", {Scope.INFER}, hash_token(b))])
    return a, b, table


def _serve(binding: ModelBinding, tmp_path: Path, **config) -> ServerThread:
    return ServerThread(create_app(binding, ServiceConfig(cache_dir=str(tmp_path / "keys"), **config))).start()


def test_one_token_cannot_take_every_session(digits_linear_qm, tmp_path) -> None:
    alice, bob, table = _two_tokens()
    binding = ModelBinding.build(digits_linear_qm, "plain")
    server = _serve(binding, tmp_path, tokens=table, max_sessions=4)
    try:
        hog = [Client(server.url, token=alice, floor=PLAIN_OK).open() for _ in range(2)]
        with pytest.raises(Exception, match=r"429.*this token already holds its maximum of 2"):
            Client(server.url, token=alice, floor=PLAIN_OK).open()
        with Client(server.url, token=bob, floor=PLAIN_OK) as other:  # room for everyone else
            xq = binding.qm.quantize_input(np.zeros((1, 64)))
            np.testing.assert_array_equal(other.forward_int(xq), binding.qm.forward_int(xq))
        for c in hog:
            c.close()
    finally:
        server.stop()


def test_sessions_of_one_token_are_invisible_to_another(digits_linear_qm, tmp_path) -> None:
    alice, bob, table = _two_tokens()
    binding = ModelBinding.build(digits_linear_qm, "plain")
    server = _serve(binding, tmp_path, tokens=table)
    try:
        with Client(server.url, token=alice, floor=PLAIN_OK) as victim:
            sid = victim._session
            payload = victim._role.encrypt(binding.qm.quantize_input(np.zeros((1, 64))))
            r = _evaluate(server.url, sid, bob, binding.fingerprint, payload, 1)
            assert r.status_code == 404 and "unknown or expired session" in r.json()["detail"]
            r = httpx.delete(f"{server.url}/v1/sessions/{sid}", headers=_auth(bob))
            assert r.status_code == 404
            assert _evaluate(server.url, sid, alice, binding.fingerprint, payload, 1).status_code == 200
    finally:
        server.stop()


def test_token_never_on_the_command_line(digits_linear_qm, tmp_path) -> None:
    from .test_cli_and_examples import _free_port, _stop, _wait_healthy

    model = tmp_path / "model.npz"
    digits_linear_qm.save(model)
    token = secrets.token_urlsafe(24)
    base = [sys.executable, "-m", "secquant", "serve", str(model), "--scheme", "plain", "--cache-dir",
            str(tmp_path / "keys")]
    env = {k: v for k, v in os.environ.items() if k != "SECQUANT_TOKEN"}
    refused = subprocess.run([*base, "--token", token, "--port", str(_free_port())], capture_output=True, text=True,
                             timeout=120, cwd=ROOT, env=env)
    assert refused.returncode == 2 and "--token-file" in refused.stderr and "ps" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)
    loose = subprocess.run([*base, "--token-file", str(token_file), "--port", str(_free_port())],
                           capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr  # a token others can read is refused
    token_file.chmod(0o600)
    port = _free_port()
    proc = subprocess.Popen([*base, "--token-file", str(token_file), "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        assert token not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        _stop(proc)


# -- 6. decoder failures are 400 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "words"), [
    (b"[" * 30_000, "nested too deeply"),
    (b"{\"a\":" * 10_000, "nested too deeply"),
    (b"1" * 5_000, "not UTF-8 JSON"),  # past Python's int digits limit: a ValueError, not a JSONDecodeError
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b'{"type": "secquant.protocol.EvaluateRequest", "version": true, "meta": {}, "payload_len": 0, '
     b'"payload_sha256": ""}', "not supported"),
])
def test_malformed_headers_are_400(plain_server, header: bytes, words: str) -> None:
    url, token, binding = plain_server
    with Client(url, token=token, floor=PLAIN_OK) as client:
        body = b"SQNT" + struct.pack(">I", len(header)) + header
        r = httpx.post(f"{url}/v1/sessions/{client._session}/evaluate", content=body, headers=_auth(token))
        assert r.status_code == 400 and words in r.json()["detail"], r.text
        xq = binding.qm.quantize_input(np.zeros((1, 64)))
        np.testing.assert_array_equal(client.forward_int(xq), binding.qm.forward_int(xq))


def test_nested_json_in_a_session_frame_is_400(plain_server) -> None:
    url, token, _ = plain_server
    header = b"[" * 30_000
    r = httpx.post(f"{url}/v1/sessions", content=b"SQNT" + struct.pack(">I", len(header)) + header,
                   headers=_auth(token))
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]


# -- 7. the cache directory is never chmod-ed ---------------------------------------------------------------------
def test_cache_dir_that_others_can_reach_is_refused_and_left_alone(digits_linear_qm, token, tmp_path) -> None:
    binding = ModelBinding.build(digits_linear_qm, "plain")
    shared = tmp_path / "shared"
    shared.mkdir()
    for mode in (0o755, 0o710, 0o707):
        shared.chmod(mode)
        with pytest.raises(CacheDirError, match=f"mode {mode:o}"):
            create_app(binding, ServiceConfig(token=token, cache_dir=str(shared)))
        assert stat.S_IMODE(shared.stat().st_mode) == mode  # unchanged
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)  # the tests run as root; otherwise this raises and the test errors
    with pytest.raises(CacheDirError, match="belongs to uid 65534"):
        create_app(binding, ServiceConfig(token=token, cache_dir=str(foreign)))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    create_app(binding, ServiceConfig(token=token, cache_dir=str(private)))  # a private one is used as is
    fresh = tmp_path / "new" / "keys"
    create_app(binding, ServiceConfig(token=token, cache_dir=str(fresh)))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_cli_refuses_a_shared_cache_dir(digits_linear_qm, tmp_path) -> None:
    model = tmp_path / "model.npz"
    digits_linear_qm.save(model)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    out = subprocess.run([sys.executable, "-m", "secquant", "serve", str(model), "--scheme", "plain", "--no-auth",
                          "--cache-dir", str(shared)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and "chmod 700" in out.stderr and "Traceback" not in out.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
