"""The service spec: what a client relies on, authenticated by the operator's signature or a pinned digest.

A client builds its keys and encodes its inputs from the server's client spec
(``GET /v1/client-spec``), and believes what the server says it releases.  A
digest that the same server publishes next to the spec authenticates nothing:
a lying server publishes the digest of its lie.  So the server publishes a
:class:`ServiceSpec`, a small JSON document naming

* the protocol version, the scheme, the model digest and the parameter fingerprint;
* the SHA-256 of the exact client-spec bytes;
* the release policy applied to every result, with its (ε, δ) per query,

and, when started with ``--sign-key``, an Ed25519 signature over its canonical
JSON under the context ``secquant/inference-service-spec/v1``
(:func:`secquant.signing.sign_bytes`).  A client either trusts the operator's
public key (``Client(..., trusted=[pub])``) or pins the spec's digest
(``spec_digest=...``: SHA-256 of the canonical JSON, printed by ``secquant
serve`` at start), and refuses anything else with
:class:`~secquant.protocol.errors.SpecAuthenticationError`.  The client spec
bytes must then hash to the value the service spec names.

What this does not prove: that the server evaluates the model it names.  A
signature authenticates parameters and promises, not computation.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from secquant.errors import ConfigError
from secquant.protocol.errors import SpecAuthenticationError
from secquant.protocol.messages import PROTOCOL_VERSION, canonical_json, sha256_hex

__all__ = ["SPEC_CONTEXT", "ServiceSpec", "authenticate"]

#: Signature context of the service spec (domain separation from artifacts and other signed bytes).
SPEC_CONTEXT = "inference-service-spec/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ServiceSpec:
    """The facts a client relies on; its canonical JSON is what is signed and pinned.

    Attributes:
        scheme: ``plain``, ``bfv``, ``ckks`` or ``paillier``.
        model_digest: Content digest of the served model artifact.
        fingerprint: Digest of protocol, scheme, model digest, options and release.
        client_spec_sha256: SHA-256 of the ``GET /v1/client-spec`` bytes.
        release: The release policy's description (:meth:`ServiceRelease.describe`).
        protocol_version: Wire protocol version.

    Raises:
        ConfigError: a malformed field.
    """

    scheme: str
    model_digest: str
    fingerprint: str
    client_spec_sha256: str
    release: dict[str, Any] = field(default_factory=dict)
    protocol_version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        for name in ("scheme", "model_digest", "fingerprint", "client_spec_sha256"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"service spec field {name} must be a non-empty string")
        if not _HEX64.fullmatch(self.client_spec_sha256):
            raise ConfigError("service spec: client_spec_sha256 must be 64 lower-case hex digits")
        if not isinstance(self.release, dict):
            raise ConfigError("service spec: release must be a JSON object")
        if isinstance(self.protocol_version, bool) or not isinstance(self.protocol_version, int):
            raise ConfigError("service spec: protocol_version must be an int")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``GET /v1/info`` carries as ``service_spec``)."""
        return {"protocol_version": self.protocol_version, "scheme": self.scheme, "model_digest": self.model_digest,
                "fingerprint": self.fingerprint, "client_spec_sha256": self.client_spec_sha256,
                "release": self.release}

    @classmethod
    def from_json(cls, data: Any) -> ServiceSpec:
        """Inverse of :meth:`to_json`.

        Raises:
            SpecAuthenticationError: not a service spec object.
        """
        keys = {"protocol_version", "scheme", "model_digest", "fingerprint", "client_spec_sha256", "release"}
        if not isinstance(data, dict) or set(data) != keys:
            raise SpecAuthenticationError(f"the server's service spec is missing or malformed (keys {sorted(keys)})")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise SpecAuthenticationError(f"malformed service spec: {exc}") from None

    def canonical(self) -> bytes:
        """The signed and hashed bytes: sorted, compact JSON."""
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        """SHA-256 of :meth:`canonical`, hex: what a user pins with ``spec_digest=``."""
        return sha256_hex(self.canonical())

    def sign(self, private_key: Any) -> dict[str, str]:
        """An Ed25519 signature record over :meth:`canonical` (``Signature.to_json``).

        Raises:
            KeyMaterialError: a key file others can read.
            ConfigError: not an Ed25519 private key.
        """
        from secquant.signing import sign_bytes

        return sign_bytes(self.canonical(), private_key, context=SPEC_CONTEXT).to_json()


def authenticate(info: dict[str, Any], *, trusted: Any = None, spec_digest: str | None = None) -> tuple[ServiceSpec, str]:
    """The service spec of a ``GET /v1/info`` answer, checked against a trusted key and/or a pinned digest.

    Args:
        info: The server's info JSON.
        trusted: Ed25519 public keys (paths, PEM/raw bytes or key objects) of operators
            whose signature is accepted; None: no signature needed.
        spec_digest: Pinned SHA-256 of the service spec (hex); None: no pin.

    Returns:
        (the spec, how it was authenticated: ``"signature <key id>"``, ``"pinned digest"``,
        both joined, or ``"unauthenticated"``).

    Raises:
        SpecAuthenticationError: malformed spec, unsigned or badly signed when ``trusted`` is given,
            or a digest other than ``spec_digest``.
    """
    from secquant.errors import IntegrityError

    spec = ServiceSpec.from_json(info.get("service_spec"))
    how: list[str] = []
    if spec_digest is not None:
        pin = str(spec_digest).strip().lower()
        if not _HEX64.fullmatch(pin):
            raise ConfigError("spec_digest must be 64 hex digits (the digest `secquant serve` prints)")
        if not hmac.compare_digest(pin, spec.digest):
            raise SpecAuthenticationError(
                f"the server's service spec has digest {spec.digest[:16]}..., not the pinned {pin[:16]}...: "
                "another server, another model or other parameters answered")
        how.append("pinned digest")
    if trusted is not None:
        from secquant.signing import Signature, verify_bytes

        record = info.get("service_spec_signature")
        if record is None:
            raise SpecAuthenticationError("the server's service spec is not signed, but trusted keys were given; "
                                          "the operator starts it with `secquant serve --sign-key KEY`")
        try:
            signer = verify_bytes(spec.canonical(), Signature.from_json(record), trusted, context=SPEC_CONTEXT)
        except IntegrityError as exc:
            raise SpecAuthenticationError(f"the service spec's signature does not verify: {exc}") from None
        how.append(f"signature {signer[:16]}")
    return spec, " and ".join(how) or "unauthenticated"
