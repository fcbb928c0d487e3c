"""The contract every encrypted backend fulfils.

A backend is built from a :class:`~secquant.QuantizedModel` and its options
(an instance of its :attr:`Backend.options_type`, a frozen dataclass; see
:meth:`Backend.make_options` and :func:`secquant.compile`); it chooses its encryption parameters from ``qm.bounds()`` *before any key exists*
and raises :class:`~secquant.errors.ParameterError` or
:class:`~secquant.errors.ModulusOverflowError` for impossible requests.

It then splits into two roles that talk only in bytes, which is exactly what
crosses the network in :mod:`secquant.protocol`:

* :class:`ClientRole` generates the keys and keeps the secret key;
  ``public_material()`` is everything the server needs (public and evaluation
  keys, never the secret); ``encrypt`` and ``decrypt`` work on integers.
* :meth:`Backend.client_spec` is everything a client needs (the model's
  :class:`~secquant.quant.model.ModelInterface` and the scheme's parameters and
  layout), never a weight; :meth:`Backend.client_from_spec` builds the client
  role from those bytes alone, so a client is weight-free by construction;
* :class:`ServerRole` is built from the model and the public material only,
  refuses material that carries a secret key (:class:`KeyMaterialError`), and
  maps an encrypted batch to an encrypted result.

The plain backend (:mod:`secquant.backends.plain`) is the reference: it runs
the same roles on unencrypted integers mod p.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.errors import ArtifactError, ConfigError
from secquant.quant.model import ModelInterface, QuantizedModel

__all__ = ["Backend", "ClientRole", "Mode", "NoOptions", "Progress", "Scheme", "ServerRole", "SimulationReport",
           "decode_client_spec", "encode_client_spec", "run_rounds", "spec_type"]

#: Format version of every ``secquant.<Scheme>ClientSpec`` artifact.
CLIENT_SPEC_VERSION = 1


#: ``progress(done, total)`` callback for long client-side work.
Progress = Callable[[int, int], None]


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
    AUTO = "auto"  #: per call, whichever the cost model predicts faster (BFV, CKKS; see backends.automode)


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


@dataclass(frozen=True)
class NoOptions:
    """The options of a backend that takes none (the plain backend)."""


class ClientRole(abc.ABC):
    """The party that owns the secret key."""

    @abc.abstractmethod
    def public_material(self) -> bytes:
        """Public and evaluation keys for the server; never the secret key."""

    def release_public_material(self) -> None:
        """Drop a cached copy of :meth:`public_material` once the server holds it (gigabytes for deep
        CKKS models); a later call makes fresh evaluation keys for the same secret key.  The default
        keeps nothing cached, so there is nothing to drop."""
        return None

    @abc.abstractmethod
    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        """Encrypt integer inputs of shape (n, *qm.input_shape).

        Args:
            xq: Integers in the model's input range.
            progress: Called as ``progress(done, total)`` while encrypting
                (units are the backend's: ciphertexts or inputs).
        """

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
    """One scheme's compilation of a quantized model.

    Subclasses set :attr:`options_type`, a frozen dataclass of the user's
    choices that validates itself in ``__post_init__`` (enum fields accept
    their lower-case values through ``coerce_enum``), and take an instance of
    it: ``Backend(qm, options)`` (None: the defaults).

    Raises:
        ConfigError: ``options`` is not an :attr:`options_type`.
    """

    scheme: ClassVar[Scheme]
    #: The frozen dataclass of this backend's options.
    options_type: ClassVar[type[Any]]

    def __init__(self, qm: QuantizedModel, options: Any = None) -> None:
        self.qm = qm
        self.options = type(self).make_options(options)

    @classmethod
    def make_options(cls, options: Any = None, keywords: Mapping[str, Any] | None = None) -> Any:
        """The typed options from either an :attr:`options_type` instance or keyword options, never both.

        Args:
            options: An instance of :attr:`options_type`, or None.
            keywords: Field names of :attr:`options_type` and their values (lower-case
                enum values accepted), validated into a new instance.

        Raises:
            ConfigError: both forms given, ``options`` of another type, an unknown
                keyword (the message lists the accepted ones), or an invalid value.
        """
        expected = cls.options_type
        given = dict(keywords or {})
        if options is not None:
            if given:
                raise ConfigError(f"pass options={expected.__name__}(...) or keyword options, not both "
                                  f"(got both, with keywords {sorted(given)})")
            if not isinstance(options, expected):
                raise ConfigError(f"{cls.__name__} takes options of type {expected.__name__}, got "
                                  f"{type(options).__name__}")
            return options
        accepted = [f.name for f in dataclasses.fields(expected)]
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for {cls.__name__}; accepted: "
                              f"{', '.join(accepted) if accepted else 'none'}")
        return expected(**given)

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Every parameter choice and why, JSON-ready (degree, moduli, scale, sizes, security)."""

    @abc.abstractmethod
    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Run the circuit without keys and predict whether the real run succeeds."""

    @abc.abstractmethod
    def client_spec(self) -> bytes:
        """Everything a client needs, as a ``secquant.<Scheme>ClientSpec`` artifact; no weight ever."""

    @classmethod
    @abc.abstractmethod
    def client_from_spec(cls, spec: bytes) -> ClientRole:
        """Generate fresh keys and return a client role built from :meth:`client_spec` bytes alone.

        Raises:
            ArtifactError, IntegrityError: the spec is not one, or was modified.
            ConfigError: the spec is malformed.
        """

    def client(self) -> ClientRole:
        """Generate fresh keys and return the client role that holds them (built from :meth:`client_spec`)."""
        return type(self).client_from_spec(self.client_spec())

    @abc.abstractmethod
    def server(self, public_material: bytes) -> ServerRole:
        """Build the server role from public material.

        Raises:
            KeyMaterialError: the material carries a secret key.
        """

    def batch_size(self) -> int | None:
        """Inputs one request holds at the cost of one (THROUGHPUT: the slots), else None."""
        return None

    def request_ciphertexts(self) -> int:
        """THROUGHPUT: input ciphertexts per batch (per CRT prime under BFV); the flattened input size
        unless the scheme packs several features per ciphertext."""
        return int(np.prod(self.qm.input_shape))

    def reference(self, xq: NDArray[Any]) -> NDArray[Any]:
        """The plaintext integer oracle for these inputs."""
        return self.qm.forward_int(np.asarray(xq))


def spec_type(scheme: Scheme) -> str:
    """Artifact type of a scheme's client spec, e.g. ``secquant.BFVClientSpec``."""
    names = {Scheme.PLAIN: "Plain", Scheme.BFV: "BFV", Scheme.CKKS: "CKKS", Scheme.PAILLIER: "Paillier"}
    return f"secquant.{names[scheme]}ClientSpec"


def encode_client_spec(scheme: Scheme, interface: ModelInterface, meta: dict[str, Any],
                       arrays: dict[str, NDArray[Any]] | None = None) -> bytes:
    """A client spec artifact: the model interface plus the scheme's ``meta`` and ``arrays``."""
    full = {"scheme": scheme.value, "interface": interface.to_dict(), **meta}
    return encode_artifact(spec_type(scheme), CLIENT_SPEC_VERSION, full, dict(arrays or {}))


def decode_client_spec(scheme: Scheme, spec: bytes) -> tuple[ModelInterface, dict[str, Any], dict[str, NDArray[Any]]]:
    """Verify and parse a client spec of ``scheme``.

    Returns:
        (interface, meta, arrays).

    Raises:
        ArtifactError: not a client spec of this scheme, or of an unknown version.
        IntegrityError: the digest does not match (the spec was modified).
        ConfigError: the spec is malformed.
    """
    if not isinstance(spec, (bytes, bytearray)):
        raise ConfigError(f"a client spec must be bytes, got {type(spec).__name__}")
    _, meta, arrays = read_artifact(bytes(spec), spec_type(scheme), (CLIENT_SPEC_VERSION,))
    if meta.get("scheme") != scheme.value:
        raise ArtifactError(f"client spec names scheme {meta.get('scheme')!r}, expected {scheme.value!r}")
    interface = meta.get("interface")
    if not isinstance(interface, dict):
        raise ConfigError("the client spec lacks the model interface; rebuild it with backend.client_spec()")
    return ModelInterface.from_dict(interface), meta, arrays


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
