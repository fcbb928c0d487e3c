"""The client app's JSON API against real inference servers on 127.0.0.1 (real BFV, CKKS, Paillier).

Oracles: ``qm.predict`` and ``qm.forward_int`` of the same model file the server
serves; the relay's record of the bytes that went to the server; the typed
error codes the page shows.  Planted bugs: a decryption off by one, a CKKS
difference over its bound, a server with another model.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import secquant
from secquant.data import load_dataset
from secquant.demo import prepare_models
from secquant.protocol import ModelBinding, ServerThread, ServiceConfig
from secquant.protocol import create_app as create_server_app
from secquant.web.app import ClientAppConfig, create_app
from secquant.web.choices import DemoModel, DemoScheme, ServerEntry
from secquant.web.errors import DemoServerError
from secquant.web.inference import agreement, summarize_parameters

TOKEN = secrets.token_urlsafe(24)
OPTIONS = {"bfv": {"mode": "latency"}, "ckks": {}, "paillier": {"interactive": True}}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(digits_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """digits servers for the three schemes + one serving another digits model, and the client app."""
    manifest = {"digits": digits_model}
    other = prepare_models(("digits",), tmp_path_factory.mktemp("other"), epochs=1, seed=1,
                           echo=lambda _: None)["digits"]["path"]
    keys = tmp_path_factory.mktemp("keys")
    servers, entries = [], []
    for scheme in ("bfv", "ckks", "paillier"):
        binding = ModelBinding.build(manifest["digits"]["path"], scheme, OPTIONS[scheme])
        servers.append(ServerThread(create_server_app(binding, ServiceConfig(token=TOKEN, cache_dir=str(keys)))).start())
        entries.append(ServerEntry(servers[-1].url, DemoModel.DIGITS, DemoScheme(scheme)))
    binding = ModelBinding.build(other, "bfv", {"mode": "latency"})
    servers.append(ServerThread(create_server_app(binding, ServiceConfig(token=TOKEN, cache_dir=str(keys)))).start())
    entries.append(ServerEntry(servers[-1].url))  # remote-style: resolves to digits/bfv... with another model
    entries.append(ServerEntry(f"http://127.0.0.1:{_closed_port()}"))  # nobody listens
    config = ClientAppConfig(manifest={"digits": manifest["digits"]}, servers=tuple(entries), token=TOKEN)
    app = ServerThread(create_app(config)).start()
    yield app.url, manifest["digits"], entries
    app.stop()
    for server in servers:
        server.stop()


def _run(url: str, body: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
    answer = httpx.post(f"{url}/api/run", json=body)
    assert answer.status_code == 202, answer.text
    job_id, deadline = answer.json()["job"], time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        assert job["stage"], job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not finish in {timeout} s")


@pytest.mark.parametrize("scheme", ["bfv", "ckks", "paillier"])
def test_test_image_runs_and_agrees_with_the_reference(stack: Any, scheme: str) -> None:
    url, entry, _ = stack
    qm = secquant.QuantizedModel.load(entry["path"])
    x = load_dataset("digits").x_test[7:8]
    job = _run(url, {"model": "digits", "scheme": scheme, "input": {"kind": "test", "index": 7}})
    assert job["state"] == "done", job["error"]
    r = job["result"]
    assert r["prediction"] == int(qm.predict(x).argmax())
    ref = qm.forward_int(qm.quantize_input(x)).ravel()
    assert r["client"]["reference"] == [str(int(v)) for v in ref]
    assert r["client"]["input_int"]["values"] == [int(v) for v in qm.quantize_input(x).ravel()]
    assert r["client"]["agreement"]["ok"] is True
    if scheme == "ckks":
        diff = np.abs(np.array([int(v) for v in r["client"]["decrypted"]], dtype=object) - ref.astype(object))
        assert r["client"]["agreement"]["kind"] == "within bound" and max(diff) <= r["parameters"]["full"]["max_abs_error_int"]
    else:
        assert r["client"]["agreement"]["kind"] == "bit-exact" and r["client"]["decrypted"] == r["client"]["reference"]
    # the bytes the page shows are those the relay forwarded to the server
    wire = httpx.get(f"{url}/api/wire", params={"job": job["id"]}).json()["records"]
    evaluates = [w for w in wire if w["method"] == "POST" and w["path"].endswith("/evaluate")]
    assert r["server_view"]["ciphertext_bytes"] == sum(w["request_bytes"] for w in evaluates) > 0
    assert r["server_view"]["requests"] == len(evaluates) == (2 if scheme == "paillier" else 1)
    assert r["server_view"]["result_bytes"] == sum(w["response_bytes"] for w in evaluates)
    first = evaluates[0]
    assert first["head_hex"].startswith(b"SQNT".hex()) and first["frame"]["type"].endswith("EvaluateRequest")
    assert first["frame"]["header_bytes"] + first["frame"]["payload_bytes"] == first["request_bytes"]
    names = [s["name"] for s in job["stages"]]
    assert any("server evaluating" in n for n in names) and any("encrypting" in n for n in names)


def test_keys_are_made_and_uploaded_once_per_server(stack: Any) -> None:
    url, _, _ = stack
    first = _run(url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 1}})
    second = _run(url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 2}})
    for job in (first, second):
        assert job["state"] == "done", job["error"]
    sessions = [w for w in httpx.get(f"{url}/api/wire").json()["records"]
                if w["method"] == "POST" and w["path"] == "/v1/sessions" and w["server"] == stack[2][0].url]
    assert len(sessions) == 1 and second["result"]["server_view"]["keys_uploaded_now"] is False
    assert second["result"]["server_view"]["keys_bytes"] == sessions[0]["request_bytes"] > 100_000


def test_parameters_are_the_servers_em_parameters(stack: Any) -> None:
    url, entry, _ = stack
    job = _run(url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 0}})
    em = secquant.compile(secquant.QuantizedModel.load(entry["path"]), "bfv", mode="latency")
    expected = em.parameters()
    summary = {row["key"]: row["value"] for row in job["result"]["parameters"]["summary"]}
    assert summary["poly_degree"] == expected["poly_degree"] and summary["plain_moduli"] == list(expected["plain_moduli"])
    assert summary["estimated_security_bits"] >= 128


def test_canvas_drawing_runs(stack: Any) -> None:
    url, _, _ = stack
    canvas = np.zeros((280, 280), np.uint8)
    canvas[40:240, 120:170] = 255  # 200 × 50: 32 × 8 after scaling
    body = {"kind": "canvas", "width": 280, "height": 280, "pixels": base64.b64encode(canvas.tobytes()).decode()}
    job = _run(url, {"model": "digits", "scheme": "bfv", "input": body})
    assert job["state"] == "done" and job["result"]["client"]["agreement"]["ok"]
    image = np.array(job["result"]["client"]["image"]).reshape(8, 8)
    assert np.allclose(image[:, 3:5], 1.0, atol=1e-3)  # the bar, 8 rows tall, two blocks wide


def test_spec_mismatch_and_unreachable_are_explained(stack: Any) -> None:
    url, _, entries = stack
    # the fourth server resolves to digits/bfv but serves another model: the pinned Client refuses it
    client_app = httpx.get(f"{url}/api/models").json()
    assert [s["url"] for s in client_app["servers"]] == [e.url for e in entries]
    from secquant.web.servers import ServerPool

    pool = ServerPool(list(entries), TOKEN)
    assert pool.resolve(3).model is DemoModel.DIGITS and pool.health(entries[4]) == "unreachable"
    job = _run(url, {"model": "digits", "scheme": "ckks", "input": {"kind": "test", "index": 0}})
    assert job["state"] == "done"  # a dead server does not hide a live one
    mismatch = _app_with(stack, [entries[3]])
    job = _run(mismatch.url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 0}})
    assert job["state"] == "failed" and job["error"]["error"] == "SpecMismatch", job["error"]
    assert "spec mismatch" in job["error"]["detail"] and "digest" in job["error"]["detail"]
    mismatch.stop()
    dead = _app_with(stack, [entries[4]])
    job = _run(dead.url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 0}})
    assert job["state"] == "failed" and job["error"]["error"] == "ServerUnreachable"
    assert entries[4].url in job["error"]["detail"]
    dead.stop()


def _app_with(stack: Any, entries: list[ServerEntry]) -> Any:
    manifest = {"digits": stack[1]}
    return ServerThread(create_app(ClientAppConfig(manifest=manifest, servers=tuple(entries), token=TOKEN))).start()


def test_a_local_server_that_exited_is_named(stack: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "print('boom: no model here')"], stdout=subprocess.DEVNULL)
    proc.wait()
    log = tmp_path / "serve.log"
    log.write_text("secquant: error: the model file is missing\n")
    app = _app_with(stack, [ServerEntry(f"http://127.0.0.1:{_closed_port()}", DemoModel.DIGITS, DemoScheme.BFV,
                                        pid=proc.pid, log=str(log))])
    job = _run(app.url, {"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 0}})
    app.stop()
    assert job["error"]["error"] == "ServerExited" and "the model file is missing" in job["error"]["detail"]


@pytest.mark.parametrize(("body", "code"), [
    ({"model": "digits", "scheme": "bfv", "input": {"kind": "canvas", "width": 280, "height": 280,
                                                    "pixels": base64.b64encode(bytes(280 * 280)).decode()}}, "EmptyCanvas"),
    ({"model": "digits", "scheme": "bfv", "input": {"kind": "file", "width": 28, "height": 28,
                                                    "pixels": base64.b64encode(bytes(784)).decode()}}, "WrongImageSize"),
    ({"model": "digits", "scheme": "bfv", "input": {"kind": "canvas", "width": 280, "height": 280,
                                                    "pixels": base64.b64encode(bytes(99)).decode()}}, "WrongImageSize"),
    ({"model": "mnist", "scheme": "bfv", "input": {"kind": "test", "index": 0}}, "UnknownModel"),
    ({"model": "resnet", "scheme": "bfv", "input": {"kind": "test", "index": 0}}, "UnknownModel"),
    ({"model": "digits", "scheme": "rsa", "input": {"kind": "test", "index": 0}}, "UnknownScheme"),
    ({"model": "digits", "scheme": "bfv", "input": {"kind": "test", "index": 10**6}}, "BadInput"),
    ({"model": "digits", "scheme": "bfv", "input": {"kind": "webcam"}}, "BadInput"),
])
def test_bad_input_is_refused_with_its_code(stack: Any, body: dict[str, Any], code: str) -> None:
    answer = httpx.post(f"{stack[0]}/api/run", json=body)
    assert answer.status_code == 422 and answer.json()["error"] == code, answer.text
    assert answer.json()["detail"]


def test_foreign_hosts_and_bodies_refused(stack: Any) -> None:
    url = stack[0]
    assert httpx.get(f"{url}/api/health", headers={"Host": "attacker.example:80"}).status_code == 421
    assert httpx.get(f"{url}/api/health", headers={"Host": "localhost"}).status_code == 200
    assert httpx.post(f"{url}/api/run", content=b"[1, 2]").json()["error"] == "BadInput"
    assert httpx.post(f"{url}/api/run", content=b"{not json").status_code == 422
    assert httpx.post(f"{url}/api/run", content=b" " * (8 * 2**20 + 1)).json()["error"] == "TooLarge"
    assert httpx.get(f"{url}/api/jobs/nope").json()["error"] == "UnknownJob"
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "secret key" in page.text and "https://" not in page.text
    for asset in ("app.js", "style.css"):
        text = httpx.get(f"{url}/static/{asset}").text
        assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere


def test_plain_http_to_a_remote_host_is_refused(digits_model: dict[str, Any]) -> None:
    with pytest.raises(DemoServerError, match="refusing plain http://"):
        ClientAppConfig(manifest={"digits": digits_model}, servers=(ServerEntry("http://inference.example:8000"),))


def test_agreement_catches_planted_errors() -> None:
    ref = np.array([[5, -7, 2**40]], dtype=object)
    params = {"max_abs_error_int": 10}
    assert agreement(DemoScheme.BFV, ref.copy(), ref, params)["ok"]
    off = ref.copy()
    off[0, 2] += 1  # one integer off by one, beyond float64 precision
    bad = agreement(DemoScheme.PAILLIER, off, ref, params)
    assert not bad["ok"] and bad["max_abs_diff"] == 1 and "NOT bit-exact" in bad["label"]
    assert agreement(DemoScheme.CKKS, ref + 10, ref, params)["ok"]
    over = agreement(DemoScheme.CKKS, ref + 11, ref, params)
    assert not over["ok"] and "OUTSIDE" in over["label"]
    assert not agreement(DemoScheme.CKKS, ref, ref, {})["ok"]  # no stated bound: never green


def test_parameter_summary_picks_what_is_there() -> None:
    rows = summarize_parameters({"scheme": "bfv", "poly_degree": 8192, "estimated_security_bits": 128, "x": 1})
    assert [(r["name"], r["value"]) for r in rows] == [("scheme", "bfv"), ("N (polynomial degree)", 8192),
                                                        ("security (bits)", 128)]
