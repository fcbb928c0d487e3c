"""Client of the encrypted-inference service (httpx).

.. code-block:: python

    from secquant.protocol import Client

    with Client("http://127.0.0.1:8000", token=token) as client:
        scores = client.predict(x)          # what em.predict(x) returns

The client generates the keys (they never leave this process), uploads the
public material once, then sends encrypted batches.  It builds its role from
the server's client spec (``GET /v1/client-spec``: shapes, input quantization,
output scale and bound, encryption parameters; never the weights), so it never
needs, and never downloads, the model.  ``model=`` optionally pins the model:
the server's model digest must then match the local copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.backends.base import Scheme, decode_client_spec
from secquant.backends.compile import client_from_spec
from secquant.errors import ConfigError
from secquant.protocol.errors import ParameterMismatchError
from secquant.protocol.inference.binding import artifact_digest, model_artifact
from secquant.protocol.messages import (
    EVALUATE_REQUEST,
    EVALUATE_RESPONSE,
    PROTOCOL_VERSION,
    SESSION_CREATE,
    Frame,
    decode_frame,
    encode_frame,
)
from secquant.protocol.transport import OCTET_STREAM, http_client, raise_for_status
from secquant.quant.model import ModelInterface, QuantizedModel

__all__ = ["Client", "RemoteInference", "infer_remote"]



class Client:
    """Talks to one inference server; one session per client object.

    Args:
        url: Base URL, e.g. ``"https://host:8000"``.
        token: Bearer token (None if the server runs without authentication).
        model: Optional local copy of the model (object, artifact path or
            bytes) to pin: the server's model digest must match it.  Never
            needed: the role is built from the server's client spec.
        verify: TLS verification: True, False, or a CA bundle path.
        timeout: Seconds per HTTP request (> 0).

    Raises:
        ConfigError: invalid arguments.
    """

    def __init__(self, url: str, token: str | None = None, *, model: QuantizedModel | str | Path | bytes | None = None,
                 verify: bool | str = True, timeout: float = 600.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}")
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._http = http_client(url, token, verify=verify, timeout=timeout)
        self._model = model
        self.info: dict[str, Any] = {}
        self.spec: bytes | None = None
        self.interface: ModelInterface | None = None
        self._role: Any = None
        self._session: str | None = None
        self.last_timings: dict[str, float] = {}

    # -- session -------------------------------------------------------------
    def open(self) -> Client:
        """Fetch the server's client spec, make keys and create the session (idempotent).

        Raises:
            ParameterMismatchError: the pinned local model differs from the server's, or
                the client spec does not match the server's info.
            RemoteError: the server refused a request.
            ArtifactError: the client spec is malformed or was modified.
        """
        if self._session is not None:
            return self
        self.info = self._get_json("/v1/info")
        if self.info.get("protocol_version") != PROTOCOL_VERSION:
            raise ParameterMismatchError(f"server speaks protocol {self.info.get('protocol_version')}, "
                                         f"this client {PROTOCOL_VERSION}")
        if self._model is not None:
            self._check_pinned(self._model)
        response = self._http.get("/v1/client-spec")
        raise_for_status(response)
        spec = bytes(response.content)
        if artifact_digest(spec) != self.info.get("client_spec_digest"):
            raise ParameterMismatchError("the client spec does not match the server's info (digest mismatch)")
        scheme = Scheme(self.info["scheme"])
        self.interface = decode_client_spec(scheme, spec)[0]
        self.spec, self._role = spec, client_from_spec(scheme, spec)
        frame = Frame(SESSION_CREATE, 1, {"scheme": scheme.value, "model_digest": self.info["model_digest"],
                                          "fingerprint": self.info["fingerprint"]}, self._role.public_material())
        response = self._http.post("/v1/sessions", content=encode_frame(frame), headers=OCTET_STREAM)
        raise_for_status(response)
        self._session = str(response.json()["session_id"])
        return self

    def _check_pinned(self, model: QuantizedModel | str | Path | bytes) -> None:
        """Refuse a server whose model is not the pinned local copy."""
        if isinstance(model, QuantizedModel):
            data = model_artifact(model)
        else:
            data = model if isinstance(model, bytes) else Path(model).read_bytes()
        digest = artifact_digest(data)
        if digest != self.info["model_digest"]:
            raise ParameterMismatchError(
                f"the local model (digest {digest[:16]}...) is not the server's "
                f"({self.info['model_digest'][:16]}...)")

    def close(self) -> None:
        """Delete the session on the server (best effort) and close the connection."""
        if self._session is not None:
            try:
                self._http.delete(f"/v1/sessions/{self._session}")
            except Exception:  # noqa: BLE001 - closing must not raise on a dead server
                pass
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
            body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": self.info["fingerprint"],
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
                body = encode_frame(Frame(EVALUATE_REQUEST, 1, {"fingerprint": self.info["fingerprint"],
                                                                "batch": len(chunk)}, request))
                answer = self._evaluate(body, len(chunk), timings)
            t2 = time.perf_counter()
            outs.append(self._role.decrypt(answer))
            timings["decrypt"] += time.perf_counter() - t2
        self.last_timings = timings
        return np.concatenate(outs, axis=0)

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
                 verify: bool | str = True, timeout: float = 600.0) -> RemoteInference:
    """One session: encrypt ``x``, evaluate remotely, decrypt (``secquant infer --server URL``).

    Args:
        url: The server's base URL.
        x: Float inputs of shape (n, *input_shape).
        token: Bearer token (default ``$SECQUANT_TOKEN``, which keeps it out of the process list).
        model: Optional local copy of the model to pin (never needed, never downloaded).
        verify: TLS verification (bool or CA bundle path).
        timeout: Seconds per HTTP request.

    Raises:
        RemoteError: the server refused a request.
        ParameterMismatchError: the pinned local model is not the server's.
    """
    import os

    token = token or os.environ.get("SECQUANT_TOKEN")
    t0 = time.perf_counter()
    with Client(url, token, model=model, verify=verify, timeout=timeout) as client:
        setup = time.perf_counter() - t0
        scores = client.predict(x)
        timings = dict(client.last_timings, setup=setup)
        return RemoteInference(scores=scores, timings=timings, info=dict(client.info))
