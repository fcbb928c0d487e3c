"""Issue 14, attacks 1-3: a malicious server against the client (real servers on 127.0.0.1, real keys).

Each attack ran against the baseline (commit 92a1e70) and succeeded there:

1. A server compiled with ``key_bits=256, allow_insecure=True`` made the client
   generate a 256-bit Paillier key (only a ``warnings.warn``).  Now the client's
   own floor refuses the spec before any key is made.
2. A second server with another spec was accepted: the spec was checked only
   against a digest from the same server.  Now the service spec must carry a
   trusted operator signature or match a pinned digest.
3. ``Client("http://<remote>")`` and ``verify=False`` were accepted silently.

Oracles: the typed error, the absence of any generated key (a counting
wrapper around key generation), and for the honest paths the local
``qm.forward_int``.  Deterministic.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secquant.backends.base import Scheme, decode_client_spec, encode_client_spec
from secquant.errors import ParameterError
from secquant.protocol import Client
from secquant.protocol.errors import InsecureParametersError, SpecAuthenticationError, TransportSecurityError
from secquant.protocol.inference import ServiceConfig, create_app
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.inference.floors import InsecureParametersWarning, SecurityFloor, client_role_from_spec
from secquant.protocol.inference.manifest import ServiceSpec
from secquant.protocol.messages import sha256_hex
from secquant.protocol.runner import ServerThread
from secquant.protocol.transport import InsecureTransportWarning

from .conftest import start_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def keygen_calls(monkeypatch) -> list[int]:
    """Every Paillier key the client side generates, by size."""
    import secquant.backends.paillier.backend as backend

    calls: list[int] = []
    real = backend.generate_keypair

    def counting(bits: int, **kw: Any) -> Any:
        calls.append(bits)
        return real(bits, **kw)

    monkeypatch.setattr(backend, "generate_keypair", counting)
    return calls


# -- 1. the server cannot lower the client's key size or security --------------------------------------------
def test_paillier_server_cannot_shrink_the_clients_key(digits_linear_qm, token, tmp_path, keygen_calls) -> None:
    server, _ = start_server(digits_linear_qm, "paillier", token, tmp_path / "keys",
                             {"key_bits": 256, "allow_insecure": True})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning-and-carry-on: a typed refusal
            with pytest.raises(InsecureParametersError, match=r"256-bit Paillier modulus.*floor of 128"):
                Client(server.url, token=token).open()
        assert keygen_calls == []  # refused before any key was made
        # the client's own, explicit and loud opt-out is the only way to accept it
        with pytest.warns(InsecureParametersWarning, match="INSECURE"):
            with Client(server.url, token=token, floor=SecurityFloor(allow_insecure=True)) as client:
                xq = digits_linear_qm.quantize_input(np.zeros((1, 64)))
                np.testing.assert_array_equal(client.forward_int(xq), digits_linear_qm.forward_int(xq))
        assert keygen_calls == [256]
    finally:
        server.stop()


def test_2048_bit_server_is_below_the_default_128_bit_floor(digits_linear_qm, token, tmp_path, keygen_calls,
                                                            digits) -> None:
    server, binding = start_server(digits_linear_qm, "paillier", token, tmp_path / "keys", {"key_bits": 2048})
    try:
        with pytest.raises(InsecureParametersError, match="112-bit"):
            Client(server.url, token=token).open()
        with Client(server.url, token=token, floor=SecurityFloor(min_security_bits=112)) as client:
            np.testing.assert_array_equal(client.predict(digits.x_test[:3]), binding.qm.predict(digits.x_test[:3]))
        assert keygen_calls == [2048]
    finally:
        server.stop()


def test_spec_allow_insecure_field_is_never_trusted(digits_linear_qm) -> None:
    from secquant.backends.paillier.backend import PaillierBackend

    spec = ModelBinding.build(digits_linear_qm, "paillier", {"key_bits": 1024, "allow_insecure": True}).em.client_spec()
    assert decode_client_spec(Scheme.PAILLIER, spec)[1]["allow_insecure"] is True  # the server says "fine"
    with pytest.raises(ParameterError, match="1024-bit"):
        PaillierBackend.client_from_spec(spec)  # the reader decides, and did not opt out


def test_paillier_floor_through_the_real_cli(digits_linear_qm, tmp_path, keygen_calls) -> None:
    """``secquant serve --option key_bits=256 --option allow_insecure=true``, as in the issue."""
    from .test_cli_and_examples import _free_port, _stop, _wait_healthy

    model = tmp_path / "model.npz"
    digits_linear_qm.save(model)
    token, port = secrets.token_urlsafe(24), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "secquant", "serve", str(model), "--scheme", "paillier",
                             "--option", "key_bits=256", "--option", "allow_insecure=true", "--port", str(port),
                             "--cache-dir", str(tmp_path / "keys")], env=dict(os.environ, SECQUANT_TOKEN=token),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        with pytest.raises(InsecureParametersError):
            Client(f"http://127.0.0.1:{port}", token=token).open()
        assert keygen_calls == []
    finally:
        _stop(proc)


def _lying_server(binding: ModelBinding, spec: bytes, token: str, cache: Path) -> ServerThread:
    """A real server that publishes ``spec`` (and a service spec consistent with its own lie)."""
    app = create_app(binding, ServiceConfig(token=token, cache_dir=str(cache)))
    state = app.state.secquant
    state.client_spec = spec
    state.spec = ServiceSpec(binding.scheme, binding.model_digest, binding.fingerprint, sha256_hex(spec),
                             state.spec.release)
    state.info.update(service_spec=state.spec.to_json(), service_spec_digest=state.spec.digest)
    return ServerThread(app).start()


def _forge(scheme: Scheme, spec: bytes, part: str, **changes: Any) -> bytes:
    interface, meta, arrays = decode_client_spec(scheme, spec)
    return encode_client_spec(scheme, interface, {part: dict(meta[part], **changes)}, arrays)


def test_bfv_spec_below_128_bits_is_refused_before_keys(digits_linear_qm, token, tmp_path) -> None:
    """A lying BFV server: N=4096 with a 180-bit coefficient modulus (the table allows 109 at 128 bits)."""
    binding = ModelBinding.build(digits_linear_qm, "bfv")
    honest = binding.em.client_spec()
    forged = _forge(Scheme.BFV, honest, "params", poly_degree=4096, coeff_bits=[60, 60, 60])
    server = _lying_server(binding, forged, token, tmp_path / "keys")
    try:
        with pytest.raises(InsecureParametersError, match="N=4096 with a 180-bit coefficient modulus"):
            Client(server.url, token=token).open()
    finally:
        server.stop()
    claims_128 = _forge(Scheme.BFV, honest, "params", security=128)  # honest parameters, but the client wants 192
    with pytest.raises(InsecureParametersError, match="floor of 192"):
        client_role_from_spec(Scheme.BFV, claims_128, SecurityFloor(min_security_bits=192))


def test_ckks_spec_below_128_bits_is_refused(digits_linear_qm) -> None:
    spec = ModelBinding.build(digits_linear_qm, "ckks").em.client_spec()
    primes = decode_client_spec(Scheme.CKKS, spec)[1]["plan"]["primes"]
    forged = _forge(Scheme.CKKS, spec, "plan", primes=[*primes, *primes, *primes])  # 3x the modulus, same N
    with pytest.raises(InsecureParametersError, match=r"CKKS|N="):
        client_role_from_spec(Scheme.CKKS, forged)
    client_role_from_spec(Scheme.CKKS, spec)  # the honest spec passes the same check


def test_plain_backend_is_refused_without_the_clients_opt_out(digits_linear_qm, token, tmp_path) -> None:
    """A server that switches to the plain backend would read the inputs: no encryption is below any floor."""
    server, _ = start_server(digits_linear_qm, "plain", token, tmp_path / "keys")
    try:
        with pytest.raises(InsecureParametersError, match="no encryption"):
            Client(server.url, token=token).open()
    finally:
        server.stop()


# -- 2. the spec is authenticated by the operator, not by the server's own digest -----------------------------
@pytest.fixture()
def operator(tmp_path) -> tuple[Path, Path]:
    from secquant.signing import generate_signing_keys

    return generate_signing_keys(tmp_path / "operator", "operator")


def _signed_server(qm, scheme: str, token: str, cache: Path, sign_key: Any, options: Any = None) -> tuple[Any, Any]:
    binding = ModelBinding.build(qm, scheme, options)
    app = create_app(binding, ServiceConfig(token=token, cache_dir=str(cache), sign_key=sign_key))
    return ServerThread(app).start(), app.state.secquant


def test_substituted_spec_is_refused(digits_linear_qm, digits_mlp_qm, token, tmp_path, operator, digits) -> None:
    private, public = operator
    from secquant.signing import generate_signing_keys

    other_private, _ = generate_signing_keys(tmp_path / "other", "other")
    a, a_state = _signed_server(digits_linear_qm, "ckks", token, tmp_path / "a", private)
    b, _ = _signed_server(digits_mlp_qm, "ckks", token, tmp_path / "b", other_private)  # another spec, another key
    c, _ = _signed_server(digits_mlp_qm, "ckks", token, tmp_path / "c", None)  # unsigned
    # d replays A's signed service spec (and signature) but serves its own client spec
    d, d_state = _signed_server(digits_mlp_qm, "ckks", token, tmp_path / "d", None)
    d_state.info.update(service_spec=a_state.info["service_spec"],
                        service_spec_signature=a_state.info["service_spec_signature"])
    try:
        with Client(a.url, token=token, trusted=[public]) as client:  # the genuine server
            assert client.authenticated.startswith("signature")
            np.testing.assert_array_equal(client.predict(digits.x_test[:2]).argmax(1),
                                          digits_linear_qm.predict(digits.x_test[:2]).argmax(1))
        with pytest.raises(SpecAuthenticationError, match="unknown key"):
            Client(b.url, token=token, trusted=[public]).open()
        with pytest.raises(SpecAuthenticationError, match="not signed"):
            Client(c.url, token=token, trusted=[public]).open()
        with pytest.raises(SpecAuthenticationError, match="substituted or modified"):
            Client(d.url, token=token, trusted=[public]).open()
        pin = a_state.spec.digest
        with Client(a.url, token=token, spec_digest=pin) as client:
            assert client.authenticated == "pinned digest"
        for server in (b, c):
            with pytest.raises(SpecAuthenticationError, match="not the pinned"):
                Client(server.url, token=token, spec_digest=pin).open()
    finally:
        for server in (a, b, c, d):
            server.stop()


def test_signature_covers_the_release_policy(digits_linear_qm, token, tmp_path, operator) -> None:
    """A server that edits its signed promise (here: claims exact logits, serves noise) is refused."""
    private, public = operator
    server, state = _signed_server(digits_linear_qm, "paillier", token, tmp_path / "a", private)
    state.info["service_spec"] = dict(state.info["service_spec"], release={"label": "dgauss", "policy": {}})
    try:
        with pytest.raises(SpecAuthenticationError, match="bad signature"):
            Client(server.url, token=token, trusted=[public]).open()
    finally:
        server.stop()


# -- 3. transport ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "verify"), [
    ("http://10.1.2.3:8000", True),
    ("http://example.org", True),
    ("http://127.0.0.1.example.org", True),
    ("https://10.1.2.3:8443", False),
])
def test_insecure_transport_is_refused(url: str, verify: Any) -> None:
    with pytest.raises(TransportSecurityError):
        Client(url, token="t" * 20, verify=verify)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://127.8.9.10:1", "http://[::1]:1", "http://localhost:1",
                                 "https://10.1.2.3:8443"])
def test_loopback_http_and_verified_https_are_accepted(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Client(url, token="t" * 20).close()


def test_insecure_transport_opt_out_is_loud() -> None:
    with pytest.warns(InsecureTransportWarning, match="INSECURE"):
        Client("http://10.1.2.3:8000", token="t" * 20, allow_insecure_transport=True).close()
    with pytest.warns(InsecureTransportWarning, match="verify=False"):
        Client("https://10.1.2.3:8443", token="t" * 20, verify=False, allow_insecure_transport=True).close()
