"""BFV, CKKS and Paillier inference through a real uvicorn server on 127.0.0.1.

Oracles: the local ``em.predict`` and ``qm.forward_int`` of the same model
(bit-exact for BFV and Paillier; for CKKS within ``parameters()["max_abs_error_int"]``,
the bound the backend states, with the same argmax), and a 403 for material
that carries a secret key.  Deterministic; no false-failure rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from secquant.protocol import Client
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.messages import EVALUATE_REQUEST, SESSION_CREATE, Frame, encode_frame

from .conftest import start_server

N_INPUTS = 6


def _check(scheme: str, client: Client, binding: ModelBinding, x: np.ndarray) -> None:
    """Remote predict against the local oracles (one remote call: the server is the slow part)."""
    qm = binding.qm
    remote = client.predict(x)
    if scheme == "ckks":
        bound = float(binding.em.parameters()["max_abs_error_int"])
        reference = qm.predict(x)  # exact: dequantized qm.forward_int
        assert np.all(np.abs(remote - reference) <= bound / qm.output_scale * (1 + 1e-9))
        np.testing.assert_array_equal(remote.argmax(axis=1), binding.em.predict(x).argmax(axis=1))
    else:
        np.testing.assert_array_equal(remote, binding.em.predict(x))
        np.testing.assert_array_equal(remote, qm.predict(x))


@pytest.mark.parametrize(("scheme", "model", "options"), [
    pytest.param("bfv", "digits_mlp_qm", None, marks=pytest.mark.slow),  # ~15-30 s on the shared machine
    ("ckks", "digits_mlp_qm", None),
    ("paillier", "digits_linear_qm", None),  # one round
    ("paillier", "digits_mlp_qm", {"interactive": True}),  # two rounds, client applies Square
])
def test_remote_equals_local(scheme: str, model: str, options: dict[str, Any] | None, request, token: str,
                             tmp_path: Path, digits) -> None:
    qm = request.getfixturevalue(model)
    server, binding = start_server(qm, scheme, token, tmp_path / "keys", options)
    try:
        with Client(server.url, token=token) as client:
            _check(scheme, client, binding, digits.x_test[:N_INPUTS])
            assert client.last_timings["round_trips"] == (2 if options else 1)
    finally:
        server.stop()


def _secret_material(scheme: str, binding: ModelBinding) -> bytes:
    role = binding.em.client()
    if scheme == "paillier":
        return role.key.to_bytes()  # the private key artifact
    if scheme == "bfv":
        from secquant.artifact import encode_artifact, read_artifact

        _, meta, arrays = read_artifact(role.public_material(), "secquant.BFVPublic")
        arrays["context0"] = np.frombuffer(role._contexts[0].serialize(save_secret_key=True), dtype=np.uint8)
        return encode_artifact("secquant.BFVPublic", 1, meta, arrays)
    import tenseal as ts  # a TenSEAL context that still holds its secret key

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60])
    return ctx.serialize(save_secret_key=True)


@pytest.mark.parametrize("scheme", ["bfv", "ckks", "paillier"])
def test_secret_key_material_is_refused_403(scheme: str, digits_linear_qm, token: str, tmp_path: Path) -> None:
    server, binding = start_server(digits_linear_qm, scheme, token, tmp_path / "keys")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    try:
        frame = Frame(SESSION_CREATE, 1, {"fingerprint": binding.fingerprint}, _secret_material(scheme, binding))
        r = httpx.post(f"{server.url}/v1/sessions", content=encode_frame(frame), headers=auth, timeout=120)
        assert r.status_code == 403, r.text
        detail = r.json()["detail"].lower()
        assert r.json()["error"] == "KeyMaterialError" and ("secret" in detail or "private" in detail)
        assert list((tmp_path / "keys").glob("*.key")) == []  # nothing cached
        # a truncated or padded real ciphertext batch under a valid session: 4xx, server still serves.
        # (Flipped bytes inside a ciphertext are caught by the frame's payload digest in transit; a
        # server cannot tell a re-digested altered ciphertext from an honest one, and need not.)
        with Client(server.url, token=token) as client:
            payload = client._role.encrypt(binding.qm.quantize_input(np.zeros((1, 64))))
            for bad in (payload[: len(payload) // 2], payload[:-7], payload + bytes(7)):
                body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": binding.fingerprint, "batch": 1}, bad))
                r = httpx.post(f"{server.url}/v1/sessions/{client._session}/evaluate", content=body, headers=auth,
                               timeout=120)
                assert 400 <= r.status_code < 500, r.text
            _check(scheme, client, binding, np.zeros((1, 64)))
    finally:
        server.stop()


def test_ciphertexts_under_other_backend_parameters_are_4xx(digits_linear_qm, token: str, tmp_path: Path) -> None:
    """A BFV batch from a client compiled with another plain modulus, relabelled with the server's fingerprint."""
    server, binding = start_server(digits_linear_qm, "bfv", token, tmp_path / "keys")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    try:
        other = ModelBinding.build(digits_linear_qm, "ckks")
        payload = other.em.client().encrypt(digits_linear_qm.quantize_input(np.zeros((1, 64))))
        with Client(server.url, token=token) as client:
            body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": binding.fingerprint, "batch": 1}, payload))
            r = httpx.post(f"{server.url}/v1/sessions/{client._session}/evaluate", content=body, headers=auth,
                           timeout=120)
            assert r.status_code == 422, r.text
            client.forward_int(binding.qm.quantize_input(np.zeros((1, 64))))  # still serves
    finally:
        server.stop()
