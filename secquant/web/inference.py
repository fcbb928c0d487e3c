"""One press of Run: the public client API, end to end, and what each side saw.

The client app runs what a script would: ``secquant.protocol.Client(url, token,
model=qm)`` (the model pins the server's; keys are made from the server's
client spec and never leave this process), ``client.forward_int(xq)`` on
``qm.quantize_input(x)``, then the reference ``qm.forward_int(xq)``.  The
Client's URL is this app's relay (:mod:`secquant.web.relay`), so the page can
show the bytes the server received.  No crypto happens here that a script
would not do.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ArtifactError, SecquantError
from secquant.web.catalog import Catalog, LocalModel
from secquant.web.choices import DemoModel, DemoScheme, ServerEntry
from secquant.web.errors import DemoServerError, WebError
from secquant.web.jobs import Job
from secquant.web.relay import WireLog
from secquant.web.servers import ServerPool

__all__ = ["DemoClient", "agreement", "summarize_parameters"]

#: (label, keys tried in order) of the parameters the page lists; the full dict is shown too.
_PARAMETERS = (
    ("scheme", ("scheme",)), ("mode", ("mode",)), ("N (polynomial degree)", ("poly_degree",)),
    ("coefficient moduli (bits)", ("coeff_modulus_bits",)), ("plaintext moduli", ("plain_moduli",)),
    ("CKKS scale (bits)", ("scale_bits",)), ("Paillier key (bits)", ("key_bits",)),
    ("ciphertext modulus (bits)", ("ciphertext_modulus_bits",)),
    ("security (bits)", ("estimated_security_bits", "security_bits")),
    ("security requested (bits)", ("requested_security_bits", "security_requested")),
    ("error bound (output integers)", ("max_abs_error_int",)),
)


def summarize_parameters(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters the page lists first: N, moduli, security, bound (those present in ``params``)."""
    rows = []
    for label, keys in _PARAMETERS:
        key = next((k for k in keys if params.get(k) is not None), None)
        if key is not None:
            rows.append({"name": label, "key": key, "value": params[key]})
    return rows


def agreement(scheme: DemoScheme, ints: NDArray[Any], ref: NDArray[Any], params: dict[str, Any]) -> dict[str, Any]:
    """Decrypted integers against the reference: bit for bit (BFV, Paillier) or within the stated bound (CKKS)."""
    diff = int(np.max(np.abs(np.asarray(ints, dtype=object) - np.asarray(ref, dtype=object))))
    if scheme.exact:
        ok = bool(np.array_equal(np.asarray(ints, dtype=object), np.asarray(ref, dtype=object)))
        return {"ok": ok, "kind": "bit-exact", "max_abs_diff": diff, "bound": 0,
                "label": "bit-exact" if ok else f"NOT bit-exact (max |difference| {diff})"}
    bound = params.get("max_abs_error_int")
    ok = bound is not None and diff <= int(bound)
    return {"ok": ok, "kind": "within bound", "max_abs_diff": diff, "bound": bound,
            "label": (f"within bound: max |difference| {diff} <= {bound}" if ok
                      else f"OUTSIDE the stated bound: max |difference| {diff} > {bound}")}


def _softmax(scores: NDArray[np.floating]) -> list[float]:
    z = np.exp(scores - scores.max())
    return [round(float(v), 4) for v in z / z.sum()]


class DemoClient:
    """Holds one open ``secquant.protocol.Client`` per server and runs inputs through them.

    Args:
        catalog: The local models (reference and pinning).
        pool: The servers.
        wire: The relay's record of every request.
        token: Bearer token for the servers.
        startup_timeout: Seconds to wait for a local server that is still starting.
    """

    def __init__(self, catalog: Catalog, pool: ServerPool, wire: WireLog, token: str | None,
                 startup_timeout: float = 180.0) -> None:
        self.catalog, self.pool, self.wire = catalog, pool, wire
        self._token, self._timeout = token, startup_timeout
        self._clients: dict[int, Any] = {}
        self._keys_bytes: dict[int, int] = {}
        self._lock = threading.Lock()

    def open_sessions(self) -> list[str]:
        """``model/scheme`` of every server with an open session (keys made and uploaded)."""
        entries = self.pool.entries
        return [f"{entries[i].model.value}/{entries[i].scheme.value}" for i in self._clients  # type: ignore[union-attr]
                if entries[i].model and entries[i].scheme]

    def close(self) -> None:
        """End every session (best effort) and forget the keys."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _session(self, job: Job, index: int, local: LocalModel, relay: str) -> tuple[Any, bool]:
        from secquant.protocol import Client

        client = self._clients.get(index)
        if client is not None:
            return client, False
        job.set_stage("opening a session with the inference server")
        client = Client(f"{relay}/{index}", self._token, model=local.qm, timeout=600.0)
        try:
            client.open()
        except BaseException:
            client.close()
            raise
        sent = [r for r in self.wire.records(job.id) if r.method == "POST" and r.path == "/v1/sessions"]
        self._keys_bytes[index] = sent[-1].request_bytes if sent else 0
        self._clients[index] = client
        return client, True

    def _drop(self, index: int) -> None:
        client = self._clients.pop(index, None)
        if client is not None:
            client.close()

    def run(self, job: Job, relay: str, model: DemoModel, scheme: DemoScheme, image: NDArray[np.floating],
            source: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``image``, evaluate it on the server, decrypt, and check it against ``qm.forward_int``.

        Args:
            job: Where stages are reported.
            relay: Base URL of this app's relay (``http://127.0.0.1:PORT/relay``).
            model: The demo model.
            scheme: The scheme.
            image: ``(side, side)`` float image in [0, 1], preprocessed.
            source: Where the image came from (``kind``, and ``index``/``label`` for test images).

        Raises:
            WebError: the server is unreachable, exited, refused the token, or does not match
                (code ``SpecMismatch``); any other refusal, explained.
        """
        local = self.catalog.get(model)
        job.set_stage(f"finding the inference server for {model.value}/{scheme.value}")
        index = self.pool.find(model, scheme)
        entry = self.pool.wait_ready(index, self._timeout, lambda s: job.set_stage(
            "waiting for the inference server to start"))
        with self._lock:
            try:
                return self._run(job, relay, index, entry, local, scheme, image, source)
            except Exception as exc:
                self._drop(index)
                if getattr(exc, "status", None) != 404:
                    raise _explain(exc, entry, local) from exc
            try:  # the session expired or the server restarted: new keys, once
                return self._run(job, relay, index, entry, local, scheme, image, source)
            except Exception as exc:
                self._drop(index)
                raise _explain(exc, entry, local) from exc

    def _run(self, job: Job, relay: str, index: int, entry: ServerEntry, local: LocalModel, scheme: DemoScheme,
             image: NDArray[np.floating], source: dict[str, Any]) -> dict[str, Any]:
        client, fresh = self._session(job, index, local, relay)
        qm = local.qm
        xq = qm.quantize_input(local.batch(image))
        job.set_stage("encrypting the integer input (client)")
        t0 = time.perf_counter()
        ints = client.forward_int(xq)
        wall = time.perf_counter() - t0
        timings = dict(client.last_timings)
        job.set_stage("computing the reference qm.forward_int (client)")
        ref = qm.forward_int(xq)
        params = dict(client.info.get("parameters", {}))
        scores = np.asarray(qm.dequantize_output(ints), dtype=np.float64).reshape(-1)
        records = self.wire.records(job.id)
        evaluates = [r for r in records if r.method == "POST" and r.path.endswith("/evaluate")]
        return {
            "model": local.model.value, "scheme": scheme.value, "server": entry.url, "source": source,
            "prediction": int(scores.argmax()), "scores": [round(float(s), 4) for s in scores],
            "probabilities": _softmax(scores),
            "client": {
                "image": np.round(np.asarray(image, dtype=np.float64).ravel(), 3).tolist(), "side": local.model.side,
                "input_int": {"shape": list(xq.shape[1:]), "values": [int(v) for v in np.ravel(xq)],
                              "min": int(np.min(xq)), "max": int(np.max(xq))},
                "decrypted": [str(int(v)) for v in np.ravel(ints)], "reference": [str(int(v)) for v in np.ravel(ref)],
                "agreement": agreement(scheme, ints, ref, params),
                "seconds": {k: round(float(timings.get(k, 0.0)), 4) for k in ("encrypt", "decrypt", "interactive")},
                "round_trip_seconds": round(wall, 4),
            },
            "server_view": {
                "ciphertext_bytes": int(timings.get("request_bytes", 0)), "requests": len(evaluates),
                "first_request": evaluates[0].to_dict() if evaluates else None,
                "server_seconds": round(float(timings.get("evaluate", 0.0)), 4),
                "result_bytes": int(timings.get("response_bytes", 0)),
                "keys_bytes": self._keys_bytes.get(index, 0), "keys_uploaded_now": fresh,
            },
            "parameters": {"summary": summarize_parameters(params), "full": params},
            "wire": [r.to_dict() for r in records],
        }


def _explain(exc: Exception, entry: ServerEntry, local: LocalModel) -> Exception:
    """A page-ready error for a failure of the protocol client (other exceptions are returned as they are)."""
    import httpx

    if isinstance(exc, WebError):
        return exc
    if isinstance(exc, httpx.HTTPError):
        return DemoServerError(f"the request to the inference server at {entry.url} failed: "
                               f"{type(exc).__name__}: {exc}", code="ServerUnreachable")
    if not isinstance(exc, SecquantError):
        return exc
    status, error = getattr(exc, "status", None), str(getattr(exc, "error", ""))
    detail = str(getattr(exc, "detail", exc))
    where = f"the inference server at {entry.url}"
    if status == 502 or error == "ServerUnreachable":
        return DemoServerError(f"cannot reach {where}: {detail}", code="ServerUnreachable")
    if status == 401:
        return DemoServerError(f"{where} refused the token: export SECQUANT_TOKEN=<its token> and restart the demo",
                               code="Unauthorized")
    if status == 409 or type(exc).__name__ == "ParameterMismatchError" or isinstance(exc, ArtifactError):
        return DemoServerError(
            f"spec mismatch: {where} does not serve this client's {local.model.title} with matching parameters "
            f"({exc}). Serve the demo's model file {local.path.name} there, or run the demo without --server.",
            code="SpecMismatch")
    if status is not None:
        return DemoServerError(f"{where} refused the request ({status} {error}): {detail}", code=error or "Refused")
    return WebError(f"{type(exc).__name__}: {exc}", code=type(exc).__name__)
