"""The contract every encrypted backend fulfils.

A backend is built from a :class:`~secquant.QuantizedModel` and options; it
chooses its encryption parameters from ``qm.bounds()`` *before any key exists*
and raises :class:`~secquant.errors.ParameterError` or
:class:`~secquant.errors.ModulusOverflowError` for impossible requests.

It then splits into two roles that talk only in bytes, which is exactly what
crosses the network in :mod:`secquant.protocol`:

* :class:`ClientRole` generates the keys and keeps the secret key;
  ``public_material()`` is everything the server needs (public and evaluation
  keys, never the secret); ``encrypt`` and ``decrypt`` work on integers.
* :class:`ServerRole` is built from the model and the public material only,
  refuses material that carries a secret key (:class:`KeyMaterialError`), and
  maps an encrypted batch to an encrypted result.

The plain backend (:mod:`secquant.backends.plain`) is the reference: it runs
the same roles on unencrypted integers mod p.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.quant.model import QuantizedModel

__all__ = ["Backend", "ClientRole", "Mode", "Scheme", "ServerRole", "SimulationReport", "run_rounds"]


class Scheme(enum.Enum):
    """Encryption schemes; ``secquant.compile`` also accepts the lower-case names."""

    PLAIN = "plain"  #: no encryption: the reference, mod p
    BFV = "bfv"  #: exact integer arithmetic mod t (TenSEAL)
    CKKS = "ckks"  #: approximate fixed-point arithmetic (TenSEAL)
    PAILLIER = "paillier"  #: additive only (phe + gmpy2)


class Mode(enum.Enum):
    """How inputs are laid out in ciphertext slots."""

    LATENCY = "latency"  #: one input per ciphertext, rotations for sums
    THROUGHPUT = "throughput"  #: many inputs across slots, one ciphertext per feature


@dataclass(frozen=True, eq=False)
class SimulationReport:
    """What a key-less dry run predicts about the real one.

    Attributes:
        ok: Whether the real run is predicted to decrypt correctly.
        reasons: Why not, one line per problem (empty when ok).
        output: The centered integers the real run should return (exact
            schemes) or the reference values (approximate schemes).
        details: Scheme-specific bookkeeping (noise budget per layer, levels,
            scale, packing), JSON-ready.
    """

    ok: bool
    reasons: list[str]
    output: NDArray[Any]
    details: dict[str, Any] = field(default_factory=dict)


class ClientRole(abc.ABC):
    """The party that owns the secret key."""

    @abc.abstractmethod
    def public_material(self) -> bytes:
        """Public and evaluation keys for the server; never the secret key."""

    @abc.abstractmethod
    def encrypt(self, xq: NDArray[Any]) -> bytes:
        """Encrypt integer inputs of shape (n, *qm.input_shape)."""

    @abc.abstractmethod
    def decrypt(self, payload: bytes) -> NDArray[Any]:
        """Decrypt a server's final result to centered integers of shape (n, *qm.output_shape).

        Raises:
            ModulusOverflowError: a decrypted value cannot be trusted to be in range.
        """

    def next_request(self, result: bytes) -> bytes | None:
        """The next round's request built from a server result, or None when it is final.

        One-round schemes never need another request.  Interactive schemes
        (Paillier with activations) decrypt intermediate values here, apply
        what the server cannot, and encrypt the next round's input.
        """
        return None


class ServerRole(abc.ABC):
    """The party that evaluates the model on ciphertexts; holds no secret key."""

    @abc.abstractmethod
    def evaluate(self, payload: bytes) -> bytes:
        """Map an encrypted batch from :meth:`ClientRole.encrypt` to an encrypted result.

        Raises:
            ConfigError: the payload is malformed or under other parameters.
        """


class Backend(abc.ABC):
    """One scheme's compilation of a quantized model."""

    scheme: ClassVar[Scheme]

    def __init__(self, qm: QuantizedModel, **options: Any) -> None:
        self.qm = qm

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Every parameter choice and why, JSON-ready (degree, moduli, scale, sizes, security)."""

    @abc.abstractmethod
    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Run the circuit without keys and predict whether the real run succeeds."""

    @abc.abstractmethod
    def client(self) -> ClientRole:
        """Generate fresh keys and return the client role that holds them."""

    @abc.abstractmethod
    def server(self, public_material: bytes) -> ServerRole:
        """Build the server role from public material.

        Raises:
            KeyMaterialError: the material carries a secret key.
        """

    def reference(self, xq: NDArray[Any]) -> NDArray[Any]:
        """The plaintext integer oracle for these inputs."""
        return self.qm.forward_int(np.asarray(xq))


def run_rounds(client: ClientRole, server: ServerRole, payload: bytes) -> tuple[bytes, int]:
    """Send ``payload`` and every follow-up request until the result is final.

    Returns:
        The final result and the number of rounds it took.
    """
    result = server.evaluate(payload)
    rounds = 1
    while (request := client.next_request(result)) is not None:
        result = server.evaluate(request)
        rounds += 1
    return result, rounds
