"""``secquant serve --executor``: THROUGHPUT-mode BFV requests evaluated on forked workers or a local Ray cluster.

Real uvicorn servers on 127.0.0.1 with the digits MLP (BFV, N=8192); oracles:
``qm.forward_int`` bit for bit (one request of 6 inputs and one of 8,229, two
slot batches in one payload, split into two jobs), the client's own secret-key bytes (never in the
recipe or anything Ray serializes), a planted leak the same check catches, a
crafted payload that only its own request pays for, and a scripted executor
(:class:`_ScriptedExecutor`) that fixes which requests share a stream.
Deterministic; no false-failure rate.  The Ray test shares the "ray" xdist
group (``tests/conftest.py: RAY_FILES``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from secquant.backends.executors import Evaluated, ExecutorError, LocalExecutor, ServerRecipe
from secquant.backends.seal.wire import BFV_MAGIC, unframe
from secquant.errors import ConfigError
from secquant.protocol import Client
from secquant.protocol.errors import status_for
from secquant.protocol.inference import ServiceConfig, create_app
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.offload import ExecutorUnavailableError, Offload
from secquant.protocol.messages import EVALUATE_REQUEST, Frame, encode_frame

from .conftest import start_server

BFV = {"mode": "throughput"}
SLOTS = 8192


def _exact(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def _inputs(qm: Any, digits: Any, n: int) -> np.ndarray:
    return qm.quantize_input(np.concatenate([digits.x_test] * -(-n // len(digits.x_test)))[:n])


class _Recorder:
    """Wraps an executor's ``map_batches``: the recipe and payloads of every stream it is given."""

    def __init__(self, executor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streams: list[tuple[ServerRecipe, list[bytes]]] = []
        inner = executor.map_batches

        def spy(recipe: ServerRecipe, payloads: Iterable[bytes]) -> Iterator[Evaluated]:
            seen: list[bytes] = []
            self.streams.append((recipe, seen))

            def tee() -> Iterator[bytes]:
                for p in payloads:
                    seen.append(p)
                    yield p

            return inner(recipe, tee())

        monkeypatch.setattr(executor, "map_batches", spy)


@pytest.fixture(scope="module")
def fork_server(digits_mlp_qm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    token = secrets.token_urlsafe(24)
    server, binding = start_server(digits_mlp_qm, "bfv", token, tmp_path_factory.mktemp("fork") / "keys", BFV,
                                   executor="fork:2", max_batch=2 * SLOTS)
    try:
        yield server, binding, token
    finally:
        server.stop()


def _state(server: Any) -> Any:
    return server._server.config.app.state.secquant


def test_fork_executor_is_bit_exact_and_sees_public_material_only(fork_server: Any, digits: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.backends.test_ray_executor import _leaks, secret_key_forms

    server, binding, token = fork_server
    offload = _state(server).offload
    assert isinstance(offload, Offload) and isinstance(offload.executor, LocalExecutor)
    recorder = _Recorder(offload.executor, monkeypatch)
    qm = binding.qm
    with Client(server.url, token=token) as client:
        for n in (6, SLOTS + 37):  # the second request carries two slot batches in one payload
            xq = _inputs(qm, digits, n)
            assert _exact(client.forward_int(xq), qm.forward_int(xq))
        role = client._role
    # the second request's two slot batches ran as two jobs side by side, each a request of one batch
    assert [len(p) for _, p in recorder.streams] == [1, 2]
    # the reply is sent as soon as its batches are merged; the stream (and its stats) ends just after
    deadline = time.monotonic() + 30
    while offload.executor.last_stats.batches != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert offload.executor.last_stats.completions == (1, 1) and offload.executor.last_stats.max_outstanding == 2
    parts = [unframe(p, "batch", BFV_MAGIC)[0] for p in recorder.streams[1][1]]
    assert [(m["n"], m["batches"]) for m in parts] == [(SLOTS, 1), (37, 1)]
    forms = secret_key_forms(role)
    for recipe, payloads in recorder.streams:
        assert recipe.public_material == role.public_material() and recipe.local is not None
        assert not _leaks(recipe.wire, forms) and not any(_leaks(p, forms) for p in payloads)
        assert ServerRecipe.from_bytes(recipe.wire).public_material == recipe.public_material
    leaky = role._contexts[0].serialize(save_public_key=True, save_secret_key=True, save_galois_keys=False,
                                        save_relin_keys=True)
    assert _leaks(leaky, forms)  # planted: the check finds a secret key where there is one


def _crafted(client: Client, xq: np.ndarray, features: int) -> bytes:
    """An EvaluateRequest whose BFV header names ``features`` per batch: it passes the route's checks and
    only the server role, on a worker, can refuse it."""
    from secquant.backends.seal.wire import frame

    meta, blobs = unframe(client._role.encrypt(xq), "batch", BFV_MAGIC)
    payload = frame("batch", {**meta, "features": features}, [bytes(b) for b in blobs], BFV_MAGIC)
    return encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": client._fingerprint, "batch": len(xq)}, payload))


def test_a_crafted_payload_fails_only_its_own_request(fork_server: Any, digits: Any) -> None:
    """Concurrent requests of one session (two honest, one crafted) may share a stream; only the crafted one fails."""
    server, binding, token = fork_server
    qm = binding.qm
    xq = _inputs(qm, digits, 5)
    with Client(server.url, token=token) as client:
        url = f"{server.url}/v1/sessions/{client._session}/evaluate"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
        honest = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": client._fingerprint, "batch": len(xq)},
                                    client._role.encrypt(xq)))
        bodies = [honest, _crafted(client, xq, 63), honest]
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda b: httpx.post(url, content=b, headers=headers, timeout=120), bodies))
        assert [a.status_code for a in answers] == [200, 422, 200]
        assert answers[1].json()["error"] == "ConfigError"
        from secquant.protocol.messages import EVALUATE_RESPONSE, decode_frame

        for a in (answers[0], answers[2]):
            out = client._role.decrypt(bytes(decode_frame(a.content, EVALUATE_RESPONSE).payload))
            assert _exact(out, qm.forward_int(xq))
        assert _exact(client.forward_int(xq), qm.forward_int(xq))  # the session still serves


def test_a_noisy_release_is_applied_by_the_executor(digits_mlp_qm: Any, digits: Any, tmp_path: Path) -> None:
    """The release policy travels in the recipe (its JSON): the worker's server adds the noise."""
    from secquant.protocol.inference.release import parse_release
    from secquant.protocol.runner import ServerThread

    noisy = ModelBinding.build(digits_mlp_qm, "bfv", BFV, parse_release("gaussian:2"))
    server = ServerThread(create_app(noisy, ServiceConfig(allow_no_auth=True, cache_dir=str(tmp_path / "b"),
                                                          executor="fork:2"))).start()
    try:
        with Client(server.url) as client:
            bound = client.release["max_change_steps"]
            xq = _inputs(noisy.qm, digits, 30)
            noise = np.asarray(client.forward_int(xq), dtype=object) - np.asarray(noisy.qm.forward_int(xq), dtype=object)
        assert isinstance(_state(server).offload, Offload)
        assert max(abs(int(v)) for v in noise.reshape(-1)) <= bound
        assert sum(int(v) != 0 for v in noise.reshape(-1)) > 150  # 300 outputs; P(a draw is 0) ≈ 0.2 at σ = 2
    finally:
        server.stop()


def test_bad_executor_urls_and_untravelling_options_are_config_errors_at_start(
        digits_mlp_qm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from secquant.cli import main

    binding = ModelBinding.build(digits_mlp_qm, "bfv", BFV)
    for url in ("nope", "fork:0", "ray://", "local?workers=0"):
        with pytest.raises(ConfigError, match="executor"):
            create_app(binding, ServiceConfig(allow_no_auth=True, cache_dir=str(tmp_path / "a"), executor=url))
    for bad in ("", " ", 2):
        with pytest.raises(ConfigError, match="executor must be"):
            ServiceConfig(allow_no_auth=True, executor=bad)  # type: ignore[arg-type]
    model = tmp_path / "model.npz"
    digits_mlp_qm.save(model)
    assert main(["serve", str(model), "--scheme", "bfv", "--option", "mode=throughput", "--no-auth",
                 "--cache-dir", str(tmp_path / "c"), "--executor", "ray:nowhere"]) == 2
    assert "unknown executor 'ray:nowhere'" in capsys.readouterr().err


def test_latency_mode_and_paillier_stay_in_process(digits_mlp_qm: Any, digits_linear_qm: Any, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    cases = [(digits_mlp_qm, "bfv", {"mode": "latency"}), (digits_linear_qm, "paillier", None)]
    for i, (qm, scheme, options) in enumerate(cases):
        binding = ModelBinding.build(qm, scheme, options)
        with caplog.at_level(logging.WARNING, logger="secquant.protocol"):
            app = create_app(binding, ServiceConfig(allow_no_auth=True, cache_dir=str(tmp_path / str(i)),
                                                    executor="fork:2"))
        assert app.state.secquant.offload is None
        assert f"requests of this {scheme} model run in this process" in caplog.text
        caplog.clear()


# -- the dispatcher, with a scripted executor ---------------------------------------------------------------
class _ScriptedExecutor:
    """Evaluates ``recipe.local(payload)`` in the dispatcher thread; records each stream's payloads; the first
    stream waits for ``gate`` so the test can queue requests behind it."""

    workers, last_stats = 1, None

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.streams: list[list[bytes]] = []
        self.closed = False

    def map_batches(self, recipe: ServerRecipe, payloads: Iterable[bytes]) -> Iterator[Evaluated]:
        self.gate.wait(30)
        taken = list(payloads)  # as a Window with room for all of them pulls them
        self.streams.append(taken)
        for i, p in enumerate(taken):
            yield Evaluated(i, recipe.local(p), 0.0, 1)  # type: ignore[misc]

    def run(self, job: Any) -> Iterator[Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def _role(payload: bytes) -> bytes:
    if payload == b"crafted":
        raise ConfigError("malformed payload")
    if payload == b"lost":
        raise ExecutorError("the cluster is gone")
    return payload[::-1]


def test_the_dispatcher_groups_a_sessions_requests_and_isolates_failures() -> None:
    executor = _ScriptedExecutor()
    offload = Offload(executor, ServerRecipe("bfv", b"model", {}, b"", "0" * 64))  # type: ignore[arg-type]
    recipes = {key: offload.recipe(key, _role, lambda key=key: key.encode()) for key in ("s1", "s2")}
    assert offload.recipe("s1", _role, lambda: b"unused") is recipes["s1"]  # made once per session and role
    jobs = [("s1", b"a"), ("s1", b"b"), ("s2", b"c"), ("s1", b"d"), ("s1", b"crafted"), ("s1", b"e"), ("s2", b"lost")]
    futures = [offload.submit(key, recipes[key], p) for key, p in jobs]
    executor.gate.set()
    assert [f.result(30) for f in futures[:4]] + [futures[5].result(30)] == [b"a", b"b", b"c", b"d", b"e"]
    with pytest.raises(ConfigError, match="malformed payload"):
        futures[4].result(30)
    with pytest.raises(ExecutorUnavailableError, match="retry later") as lost:
        futures[6].result(30)
    assert status_for(lost.value) == 503 and "cluster" not in str(lost.value)  # no executor details for clients
    # one stream per run of a session's queued requests; the failed stream's unanswered requests ran again alone
    assert executor.streams == [[b"a", b"b"], [b"c"], [b"d", b"crafted", b"e"], [b"crafted"], [b"e"], [b"lost"]]
    offload.close()
    assert executor.closed
    with pytest.raises(ExecutorUnavailableError, match="shutting down"):
        offload.submit("s1", recipes["s1"], b"f")


# -- a local Ray cluster ------------------------------------------------------------------------------------
def test_local_ray_executor_is_bit_exact_and_ray_never_sees_a_secret_key(
        digits_mlp_qm: Any, digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    from secquant.backends.executors import RayExecutor
    from tests.backends.test_ray_executor import _Capture, _leaks, secret_key_forms

    token = secrets.token_urlsafe(24)
    server, binding = start_server(digits_mlp_qm, "bfv", token, tmp_path / "keys", BFV, executor="local?workers=2",
                                   max_batch=2 * SLOTS)
    offload = _state(server).offload
    try:
        assert isinstance(offload.executor, RayExecutor) and offload.executor.workers == 2
        capture = _Capture(monkeypatch)
        qm, forms = binding.qm, []
        with Client(server.url, token=token) as one, Client(server.url, token=token) as two:
            for client, n in ((one, 6), (two, SLOTS + 37), (one, 7)):  # two sessions: the actors switch recipes
                xq = _inputs(qm, digits, n)
                assert _exact(client.forward_int(xq), qm.forward_int(xq))
            forms = secret_key_forms(one._role) + secret_key_forms(two._role)
        blobs = [v for v in capture.values if isinstance(v, bytes)]
        assert blobs and not any(_leaks(b, forms) for b in blobs + capture.exports)
    finally:
        server.stop()
    assert offload._closed and offload.executor._ray is None  # closed when the server shut down
