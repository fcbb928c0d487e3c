"""Issue 14, attack 4: a malicious client cannot cancel the Paillier server's re-randomization.

Against the baseline (commit 92a1e70) a session whose public material carried
the DJN element ``hs = 1`` got byte-identical responses to the same request:
the server re-randomized with ``hs**a = 1``.  The server now multiplies every
response ciphertext by its own ``r**n`` (``r`` from :mod:`secrets`).

Oracles: byte equality of two answers to one request (must differ), and
decryption against ``qm.forward_int`` (must still be exact).  The chance that
two honest re-randomizations coincide is below 2**-3000 (no false failures).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from secquant.backends.paillier.keys import PaillierPublicKey, require_gmpy2
from secquant.backends.paillier.wire import REQUEST_TYPE, decode, encode
from secquant.protocol import Client
from secquant.protocol.messages import (
    EVALUATE_REQUEST,
    EVALUATE_RESPONSE,
    SESSION_CREATE,
    Frame,
    decode_frame,
    encode_frame,
)

from .conftest import start_server


def _post(url: str, path: str, token: str, frame: Frame) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=encode_frame(frame), timeout=120,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})


@pytest.fixture()
def paillier_server(digits_linear_qm, token, tmp_path):
    server, binding = start_server(digits_linear_qm, "paillier", token, tmp_path / "keys")
    try:
        yield server.url, binding
    finally:
        server.stop()


def test_hs_equal_one_does_not_cancel_rerandomization(paillier_server, token, digits) -> None:
    url, binding = paillier_server
    g2 = require_gmpy2()
    with Client(url, token=token) as honest:
        key = honest._role.key  # the attacker owns a real key pair...
        crafted = PaillierPublicKey(key.public.n, g2.mpz(1))  # ...and publishes hs = 1
        r = _post(url, "/v1/sessions", token, Frame(SESSION_CREATE, 1, {"fingerprint": binding.fingerprint},
                                                    crafted.to_bytes()))
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        xq = binding.qm.quantize_input(digits.x_test[:3])
        body = Frame(EVALUATE_REQUEST, 1, {"fingerprint": binding.fingerprint, "batch": 3}, honest._role.encrypt(xq))
        answers = []
        for _ in range(2):  # the same request, replayed
            r = _post(url, f"/v1/sessions/{sid}/evaluate", token, body)
            assert r.status_code == 200, r.text
            answers.append(bytes(decode_frame(r.content, EVALUATE_RESPONSE).payload))
        assert answers[0] != answers[1]
        for answer in answers:  # still exact
            np.testing.assert_array_equal(honest._role.decrypt(answer), binding.qm.forward_int(xq))
        # the same request replayed on the honest session differs too
        first, second = (_post(url, f"/v1/sessions/{honest._session}/evaluate", token, body) for _ in range(2))
        assert first.content != second.content


def test_non_unit_ciphertext_is_refused(paillier_server, token) -> None:
    """A ciphertext sharing a factor with n would let the key owner read the weights from the p-part."""
    url, binding = paillier_server
    with Client(url, token=token) as client:
        key = client._role.key
        xq = binding.qm.quantize_input(np.zeros((1, 64)))
        msg = decode(client._role.encrypt(xq), REQUEST_TYPE, key.public)
        cts = list(msg.ciphertexts)
        cts[0] = key.p * 12345 % key.public.nsquare
        bad = encode(REQUEST_TYPE, key.public, dict(msg.meta), cts)
        r = _post(url, f"/v1/sessions/{client._session}/evaluate", token,
                  Frame(EVALUATE_REQUEST, 1, {"fingerprint": binding.fingerprint, "batch": 1}, bad))
        assert r.status_code == 422 and "not a unit" in r.json()["detail"], r.text
        np.testing.assert_array_equal(client.forward_int(xq), binding.qm.forward_int(xq))  # still serves
