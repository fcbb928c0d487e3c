"""The plain backend: the client/server roles on unencrypted integers mod p.

It runs the same wire format and role split as the encrypted backends, so the
protocol and its tests can be checked against it, and its results are the
reference ``qm.forward_int`` reduced mod p and lifted back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import Backend, ClientRole, ServerRole, SimulationReport
from secquant.backends.compile import Scheme, register_backend
from secquant.errors import ArtifactError, ConfigError
from secquant.quant.model import QuantizedModel
from secquant.quant.primitives import centered_lift

__all__ = ["PlainBackend"]

_BATCH = "secquant.PlainBatch"


def _pack(values: NDArray[Any]) -> bytes:
    return encode_artifact(_BATCH, 1, {}, {"values": np.asarray(values, dtype=object)})


def _unpack(payload: bytes) -> NDArray[Any]:
    try:
        _, _, arrays = read_artifact(payload, _BATCH)
    except ArtifactError as exc:
        raise ConfigError(f"malformed plain batch: {exc}") from exc
    return arrays["values"]


class _PlainClient(ClientRole):
    def __init__(self, qm: QuantizedModel) -> None:
        self.qm = qm

    def public_material(self) -> bytes:
        return str(self.qm.modulus).encode()

    def encrypt(self, xq: NDArray[Any]) -> bytes:
        arr = self.qm._batched(np.asarray(xq))
        return _pack(np.mod(arr.astype(object), self.qm.modulus))

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        out = centered_lift(_unpack(payload), self.qm.modulus)
        return out.astype(np.int64) if self.qm.bounds().output.max_abs < 2**63 else out


class _PlainServer(ServerRole):
    def __init__(self, qm: QuantizedModel) -> None:
        self.qm = qm

    def evaluate(self, payload: bytes) -> bytes:
        xq = centered_lift(_unpack(payload), self.qm.modulus)
        return _pack(np.mod(np.asarray(self.qm.forward_int(xq), dtype=object), self.qm.modulus))


@register_backend(Scheme.PLAIN)
class PlainBackend(Backend):
    """No encryption; arithmetic mod ``qm.modulus``."""

    def __init__(self, qm: QuantizedModel, **options: Any) -> None:
        if options:
            raise ConfigError(f"the plain backend takes no options, got {sorted(options)}")
        super().__init__(qm)

    def parameters(self) -> dict[str, Any]:
        return {"scheme": "plain", "modulus": str(self.qm.modulus), "bits": self.qm.bounds().bits}

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        return SimulationReport(ok=True, reasons=[], output=self.reference(xq))

    def client(self) -> ClientRole:
        return _PlainClient(self.qm)

    def server(self, public_material: bytes) -> ServerRole:
        return _PlainServer(self.qm)
