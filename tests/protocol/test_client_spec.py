"""The service never hands a client the weights: clients build their role from ``GET /v1/client-spec``.

Oracles: the bytes of every weight, bias and constant array of the model (int64
and float64 encodings) must occur in no response the server sends during a
whole session; the client must never request ``GET /v1/model``; the remote
result must equal the local ``em.predict`` (bit-exact for plain, BFV and
Paillier; within ``max_abs_error_int`` for CKKS).  Arrays with fewer than 4
values or a single repeated value are not checked for bytes (they carry no
information and could match padding by chance).  Deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from secquant.errors import ArtifactError
from secquant.protocol import Client
from secquant.protocol.errors import ParameterMismatchError
from secquant.quant.model import QuantizedModel

from .conftest import PLAIN_OK, start_server


def _weight_blobs(qm: QuantizedModel, skip: frozenset[str] = frozenset()) -> list[bytes]:
    out = []
    for op in qm.ops:
        if op.kind in skip:
            continue
        for value in op.arrays().values():
            arr = np.asarray(value)
            if arr.size < 4 or len({str(v) for v in arr.reshape(-1)}) < 2:
                continue
            out += [np.asarray(arr, dtype=np.int64).tobytes(), np.asarray(arr, dtype=np.float64).tobytes()]
    if not out:
        raise AssertionError("the oracle needs at least one informative weight array")
    return out


def _record(client: Client) -> tuple[list[str], list[bytes]]:
    """Every request path and response body of the client's HTTP connection."""
    paths: list[str] = []
    bodies: list[bytes] = []

    def on_response(response: httpx.Response) -> None:
        response.read()
        paths.append(response.request.url.path)
        bodies.append(response.content)

    client._http.event_hooks["response"].append(on_response)
    return paths, bodies


@pytest.mark.parametrize(("scheme", "model", "options"), [
    ("plain", "digits_mlp_qm", None),
    pytest.param("bfv", "digits_mlp_qm", None, marks=pytest.mark.slow),
    ("ckks", "digits_mlp_qm", None),
    ("paillier", "digits_mlp_qm", {"interactive": True}),  # the client applies Square: no coefficients
])
def test_no_response_carries_weights(scheme: str, model: str, options: dict[str, Any] | None, request,
                                     token: str, tmp_path: Path, digits) -> None:
    qm = request.getfixturevalue(model)
    server, binding = start_server(qm, scheme, token, tmp_path / "keys", options)
    skip = frozenset({"square", "poly"}) if scheme == "paillier" else frozenset()
    try:
        client = Client(server.url, token=token, floor=PLAIN_OK if scheme == "plain" else None)
        paths, bodies = _record(client)
        with client:
            remote = client.predict(digits.x_test[:3])
        assert "/v1/client-spec" in paths and "/v1/model" not in paths
        for blob in _weight_blobs(qm, skip):
            assert all(blob not in body for body in bodies), "a server response carries a weight array"
        local = binding.em.predict(digits.x_test[:3])
        if scheme == "ckks":
            bound = float(binding.em.parameters()["max_abs_error_int"])
            assert np.all(np.abs(remote - qm.predict(digits.x_test[:3])) <= bound / qm.output_scale * (1 + 1e-9))
        else:
            np.testing.assert_array_equal(remote, local)
    finally:
        server.stop()


def test_spec_endpoint_matches_the_backend_and_needs_the_token(digits_mlp_qm, token: str, tmp_path: Path) -> None:
    server, binding = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys")
    try:
        assert httpx.get(f"{server.url}/v1/client-spec").status_code == 401
        r = httpx.get(f"{server.url}/v1/client-spec", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.content == binding.em.backend.client_spec()
        for blob in _weight_blobs(digits_mlp_qm):
            assert blob not in r.content
    finally:
        server.stop()


def test_client_refuses_a_spec_that_does_not_match_the_info(digits_mlp_qm, token: str, tmp_path: Path,
                                                            monkeypatch) -> None:
    server, _ = start_server(digits_mlp_qm, "plain", token, tmp_path / "keys")
    try:
        client = Client(server.url, token=token, floor=PLAIN_OK)
        real_get = client._http.get

        def tampered(path: str, **kw: Any) -> httpx.Response:
            response = real_get(path, **kw)
            if path != "/v1/client-spec":
                return response
            body = response.content
            at = body.find(str(digits_mlp_qm.modulus).encode())
            return httpx.Response(200, content=body[:at] + b"2" + body[at + 1:], request=response.request)

        monkeypatch.setattr(client._http, "get", tampered)
        with pytest.raises((ParameterMismatchError, ArtifactError)):
            client.open()
        client.close()
    finally:
        server.stop()
