"""The plain backend: the client/server roles on unencrypted integers mod p.

It runs the same wire format and role split as the encrypted backends, so the
protocol and its tests can be checked against it, and its results are the
reference ``qm.forward_int`` reduced mod p and lifted back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import (
    Backend,
    ClientRole,
    NoOptions,
    Progress,
    ServerRole,
    SimulationReport,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.compile import Scheme, register_backend
from secquant.errors import ArtifactError, ConfigError
from secquant.quant.model import ModelInterface, QuantizedModel
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
    def __init__(self, interface: ModelInterface) -> None:
        self.interface = interface

    def public_material(self) -> bytes:
        return str(self.interface.modulus).encode()

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        arr = self.interface.batched(np.asarray(xq))
        packed = _pack(np.mod(arr.astype(object), self.interface.modulus))
        if progress is not None:
            progress(len(arr), len(arr))
        return packed

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        out = centered_lift(_unpack(payload), self.interface.modulus)
        return self.interface.as_output(out)


class _PlainServer(ServerRole):
    def __init__(self, qm: QuantizedModel) -> None:
        self.qm = qm

    def evaluate(self, payload: bytes) -> bytes:
        xq = centered_lift(_unpack(payload), self.qm.modulus)
        return _pack(np.mod(np.asarray(self.qm.forward_int(xq), dtype=object), self.qm.modulus))


@register_backend(Scheme.PLAIN)
class PlainBackend(Backend):
    """No encryption; arithmetic mod ``qm.modulus``; takes no options."""

    options_type: ClassVar[type[NoOptions]] = NoOptions

    def parameters(self) -> dict[str, Any]:
        return {"scheme": "plain", "modulus": str(self.qm.modulus), "bits": self.qm.bounds().bits}

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        return SimulationReport(ok=True, reasons=[], output=self.reference(xq))

    def client_spec(self) -> bytes:
        """The model interface and the modulus; nothing else."""
        return encode_client_spec(Scheme.PLAIN, self.qm.interface(), {})

    @classmethod
    def client_from_spec(cls, spec: bytes) -> ClientRole:
        """A plain client from :meth:`client_spec` bytes alone."""
        interface, _, _ = decode_client_spec(Scheme.PLAIN, spec)
        return _PlainClient(interface)

    def server(self, public_material: bytes) -> ServerRole:
        return _PlainServer(self.qm)
