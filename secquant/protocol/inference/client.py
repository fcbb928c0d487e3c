"""Client of the encrypted-inference service (httpx).

.. code-block:: python

    from secquant.protocol import Client

    with Client("https://host:8443", token=token, trusted=["operator.pub"]) as client:
        scores = client.predict(x)          # what em.predict(x) returns

The client generates the keys (they never leave this process), uploads the
public material once, then sends encrypted batches.  It builds its role from
the server's client spec (``GET /v1/client-spec``: shapes, input quantization,
output scale and bound, encryption parameters; never the weights), so it never
needs, and never downloads, the model.  What it takes from the network, it
checks against its own settings, never against the server's word:

* **transport**: HTTPS with certificate checks, except plain HTTP on loopback
  (:func:`~secquant.protocol.transport.check_transport`);
* **authenticity**: the service spec (scheme, fingerprint, client-spec hash,
  release policy) must be signed by a ``trusted`` operator key or match a
  pinned ``spec_digest`` (:mod:`~secquant.protocol.inference.manifest`);
  without either it is accepted with a warning for non-loopback hosts;
* **security floor**: the spec's parameters must reach the client's own
  :class:`~secquant.protocol.inference.floors.SecurityFloor` (128 bits by
  default) before any key is made;
* ``model=`` optionally pins the model: the server's model digest must match the local copy.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.backends.base import Scheme, decode_client_spec
from secquant.errors import ConfigError
from secquant.protocol.errors import ParameterMismatchError, SpecAuthenticationError
from secquant.protocol.inference.binding import artifact_digest, model_and_artifact, model_artifact
from secquant.protocol.inference.floors import SecurityFloor, client_role_from_spec
from secquant.protocol.inference.manifest import ServiceSpec, authenticate
from secquant.protocol.messages import (
    EVALUATE_REQUEST,
    EVALUATE_RESPONSE,
    PROTOCOL_VERSION,
    SESSION_CREATE,
    Frame,
    decode_frame,
    encode_frame,
    sha256_hex,
)
from secquant.protocol.transport import OCTET_STREAM, check_transport, http_client, is_loopback, raise_for_status
from secquant.quant.model import ModelInterface, QuantizedModel

__all__ = ["Client", "RemoteInference", "UnauthenticatedSpecWarning", "infer_remote"]

log = logging.getLogger("secquant.protocol")


class UnauthenticatedSpecWarning(UserWarning):
    """A client used a remote server's spec without a trusted signature or a pinned digest."""


class Client:
    """Talks to one inference server; one session per client object.

    Args:
        url: Base URL, e.g. ``"https://host:8443"``; ``http://`` only to loopback
            unless ``allow_insecure_transport``.
        token: Bearer token (None if the server runs without authentication).
        model: Optional local copy of the model (object, artifact path or
            bytes) to pin: the server's model digest must match it.  Never
            needed: the role is built from the server's client spec.
        verify: TLS verification: True or a CA bundle path (False needs
            ``allow_insecure_transport``).
        timeout: Seconds per HTTP request (> 0).
        trusted: Public keys of operators whose signature on the service spec
            is accepted (paths, PEM/raw bytes or key objects); an unsigned or
            foreign spec is then refused.
        spec_digest: Pinned SHA-256 (hex) of the service spec (``secquant serve``
            prints it); any other spec is refused.
        floor: This client's minimum security (default 128 bits); a spec asking
            for less is refused before any key is made.
        allow_insecure_transport: Explicit, loud opt-out admitting plain HTTP to
            remote hosts and ``verify=False`` (test rigs only).

    Raises:
        ConfigError: invalid arguments.
        TransportSecurityError: an insecure transport without the opt-out.
    """

    def __init__(self, url: str, token: str | None = None, *, model: QuantizedModel | str | Path | bytes | None = None,
                 verify: bool | str = True, timeout: float = 600.0, trusted: Any = None,
                 spec_digest: str | None = None, floor: SecurityFloor | None = None,
                 allow_insecure_transport: bool = False) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}")
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        if floor is not None and not isinstance(floor, SecurityFloor):
            raise ConfigError(f"floor must be a SecurityFloor, got {type(floor).__name__}")
        check_transport(url, verify, allow_insecure_transport=allow_insecure_transport)
        self._http = http_client(url, token, verify=verify, timeout=timeout)
        self._model = model
        self._trusted, self._spec_digest = trusted, spec_digest
        self.floor = floor or SecurityFloor()
        self.info: dict[str, Any] = {}
        self.service_spec: ServiceSpec | None = None
        self.authenticated: str = ""
        self.spec: bytes | None = None
        self.interface: ModelInterface | None = None
        self._role: Any = None
        self._session: str | None = None
        self.last_timings: dict[str, float] = {}

    @property
    def release(self) -> dict[str, Any]:
        """The server's release policy and its (ε, δ) per query, from the authenticated service spec."""
        return dict(self.service_spec.release) if self.service_spec is not None else {}

    # -- session -------------------------------------------------------------
    def open(self) -> Client:
        """Fetch and authenticate the service spec, check the client spec, make keys, create the session.

        Idempotent.

        Raises:
            SpecAuthenticationError: the service spec is not signed by a trusted key, does not
                match the pinned digest, or the client spec does not hash to its value.
            InsecureParametersError: the spec's parameters are below this client's floor.
            ParameterMismatchError: the pinned local model differs from the server's, or
                another protocol version.
            RemoteError: the server refused a request.
            ArtifactError: the client spec is malformed or was modified.
        """
        if self._session is not None:
            return self
        self.info = self._get_json("/v1/info")
        spec, how = authenticate(self.info, trusted=self._trusted, spec_digest=self._spec_digest)
        if spec.protocol_version != PROTOCOL_VERSION:
            raise ParameterMismatchError(f"server speaks protocol {spec.protocol_version}, this client "
                                         f"{PROTOCOL_VERSION}")
        self._warn_if_unauthenticated(how)
        if self._model is not None:
            self._check_pinned(self._model, spec.model_digest)
        response = self._http.get("/v1/client-spec")
        raise_for_status(response)
        raw = bytes(response.content)
        if sha256_hex(raw) != spec.client_spec_sha256:
            raise SpecAuthenticationError("the client spec does not hash to the value the service spec names: "
                                          "it was substituted or modified")
        scheme = Scheme(spec.scheme)
        interface = decode_client_spec(scheme, raw)[0]
        role = client_role_from_spec(scheme, raw, self.floor)
        self.service_spec, self.authenticated, self.spec, self.interface, self._role = spec, how, raw, interface, role
        frame = Frame(SESSION_CREATE, 1, {"scheme": scheme.value, "model_digest": spec.model_digest,
                                          "fingerprint": spec.fingerprint}, role.public_material())
        response = self._http.post("/v1/sessions", content=encode_frame(frame), headers=OCTET_STREAM)
        raise_for_status(response)
        self._session = str(response.json()["session_id"])
        return self

    def _warn_if_unauthenticated(self, how: str) -> None:
        if how != "unauthenticated":
            return
        url = str(self._http.base_url)
        message = (f"the service spec of {url} is unauthenticated: pass trusted=[operator public key] or "
                   "spec_digest=... to refuse a substituted server")
        if is_loopback(url):
            log.info(message)
        else:
            warnings.warn(message, UnauthenticatedSpecWarning, stacklevel=3)

    def _check_pinned(self, model: QuantizedModel | str | Path | bytes, expected: str) -> None:
        """Refuse a server whose model is not the pinned local copy."""
        if isinstance(model, QuantizedModel):
            data = model_artifact(model)
        else:
            data = model_and_artifact(model if isinstance(model, bytes) else Path(model).read_bytes())[1]
        digest = artifact_digest(data)
        if digest != expected:
            raise ParameterMismatchError(
                f"the local model (digest {digest[:16]}...) is not the server's ({expected[:16]}...)")

    def close(self) -> None:
        """Delete the session on the server (best effort) and close the connection."""
        if self._session is not None:
            # Best effort: closing must not raise on a dead server.
            with contextlib.suppress(Exception):
                self._http.delete(f"/v1/sessions/{self._session}")
            self._session = None
        self._http.close()

    def __enter__(self) -> Client:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inference -----------------------------------------------------------
    def forward_int(self, xq: ArrayLike) -> NDArray[Any]:
        """Encrypted evaluation of integer inputs; what ``em.forward_int(xq)`` returns.

        Args:
            xq: Integers of shape (n, *input_shape) or one input.

        Returns:
            Centered integers of shape (n, *output_shape).

        Raises:
            RemoteError: the server refused a batch.
        """
        self.open()
        arr = self.interface.batched(np.asarray(xq))  # type: ignore[union-attr]
        step = int(self.info["max_batch"])
        outs, timings = [], {"encrypt": 0.0, "request": 0.0, "evaluate": 0.0, "decrypt": 0.0,
                             "request_bytes": 0.0, "response_bytes": 0.0}
        for start in range(0, len(arr), step):
            chunk = arr[start:start + step]
            t0 = time.perf_counter()
            payload = self._role.encrypt(chunk)
            body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": self._fingerprint,
                                                            "batch": len(chunk)}, payload))
            t1 = time.perf_counter()
            answer = self._evaluate(body, len(chunk), timings)
            timings["encrypt"] += t1 - t0
            # interactive schemes (Paillier with activations): the client opens the
            # pre-activations, applies the activation and encrypts the next round
            while True:
                t2 = time.perf_counter()
                request = self._role.next_request(answer)
                timings["interactive"] = timings.get("interactive", 0.0) + time.perf_counter() - t2
                if request is None:
                    break
                body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": self._fingerprint,
                                                                "batch": len(chunk)}, request))
                answer = self._evaluate(body, len(chunk), timings)
            t2 = time.perf_counter()
            outs.append(self._role.decrypt(answer))
            timings["decrypt"] += time.perf_counter() - t2
        self.last_timings = timings
        return np.concatenate(outs, axis=0)

    @property
    def _fingerprint(self) -> str:
        return self.service_spec.fingerprint if self.service_spec is not None else ""

    def _evaluate(self, body: bytes, batch: int, timings: dict[str, float]) -> bytes:
        t0 = time.perf_counter()
        response = self._http.post(f"/v1/sessions/{self._session}/evaluate", content=body, headers=OCTET_STREAM)
        raise_for_status(response)
        answer = decode_frame(response.content, EVALUATE_RESPONSE)
        timings["request"] += time.perf_counter() - t0
        timings["evaluate"] += float(answer.meta.get("seconds", 0.0))
        timings["request_bytes"] += len(body)
        timings["response_bytes"] += len(response.content)
        timings["round_trips"] = timings.get("round_trips", 0.0) + 1
        return bytes(answer.payload)

    def predict(self, x: ArrayLike) -> NDArray[np.float64]:
        """Float scores for float inputs; what ``em.predict(x)`` returns."""
        self.open()
        iface = self.interface
        return iface.dequantize_output(self.forward_int(iface.quantize_input(x)))  # type: ignore[union-attr]

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._http.get(path)
        raise_for_status(response)
        return dict(response.json())


@dataclass
class RemoteInference:
    """Result of :func:`infer_remote`.

    Attributes:
        scores: Float scores, shape (n, *output_shape).
        timings: Seconds in encrypt, request (round trip), evaluate (server side), decrypt; bytes sent and received.
        info: The server's ``/v1/info``.
    """

    scores: NDArray[np.float64]
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def infer_remote(url: str, x: ArrayLike, *, token: str | None = None,
                 model: QuantizedModel | str | Path | bytes | None = None,
                 verify: bool | str = True, timeout: float = 600.0, **client_options: Any) -> RemoteInference:
    """One session: encrypt ``x``, evaluate remotely, decrypt (``secquant infer --server URL``).

    Args:
        url: The server's base URL.
        x: Float inputs of shape (n, *input_shape).
        token: Bearer token (default ``$SECQUANT_TOKEN``, which keeps it out of the process list).
        model: Optional local copy of the model to pin (never needed, never downloaded).
        verify: TLS verification (True or a CA bundle path).
        timeout: Seconds per HTTP request.
        **client_options: ``trusted``, ``spec_digest``, ``floor``, ``allow_insecure_transport``
            (see :class:`Client`).

    Raises:
        RemoteError: the server refused a request.
        ParameterMismatchError: the pinned local model is not the server's.
        SpecAuthenticationError, InsecureParametersError, TransportSecurityError: see :class:`Client`.
    """
    import os

    token = token or os.environ.get("SECQUANT_TOKEN")
    t0 = time.perf_counter()
    with Client(url, token, model=model, verify=verify, timeout=timeout, **client_options) as client:
        setup = time.perf_counter() - t0
        scores = client.predict(x)
        timings = dict(client.last_timings, setup=setup)
        return RemoteInference(scores=scores, timings=timings, info=dict(client.info))
