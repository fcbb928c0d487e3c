"""The Paillier messages: a request or response is a digest-checked artifact of packed ciphertexts.

Each message names the key it was made under (its fingerprint), the round, the
batch size and the features per input; :func:`decode` refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.paillier.crypto import array_to_ciphertexts, ciphertexts_to_array
from secquant.backends.paillier.keys import PaillierPublicKey
from secquant.errors import ArtifactError, ConfigError

__all__ = ["REQUEST_TYPE", "RESPONSE_TYPE", "Message", "as_output", "decode", "encode"]

REQUEST_TYPE = "secquant.PaillierRequest"
RESPONSE_TYPE = "secquant.PaillierResponse"
_WIRE_VERSION = 1


@dataclass(frozen=True)
class Message:
    """A parsed request or response.

    Attributes:
        round: Round index, from 0.
        batch: Inputs in the batch (>= 1).
        features: Values per input (>= 1).
        ciphertexts: The ciphertexts (gmpy2 integers mod n²).
        meta: Every header field.
    """

    round: int
    batch: int
    features: int
    ciphertexts: list[Any]
    meta: dict[str, Any]


def encode(kind: str, public: PaillierPublicKey, meta: dict[str, Any], cts: list[Any]) -> bytes:
    """A ``kind`` artifact holding ``cts`` and ``meta``, tagged with the key's fingerprint."""
    full = {"key": public.fingerprint, **meta}
    return encode_artifact(kind, _WIRE_VERSION, full, {"ct": ciphertexts_to_array(cts, public.ciphertext_bytes)})


def decode(payload: bytes, kind: str, public: PaillierPublicKey) -> Message:
    """Parse and validate a wire message.

    Raises:
        ConfigError: malformed, tampered, of another kind, or under another key.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise ConfigError(f"a Paillier payload must be bytes, got {type(payload).__name__}")
    try:
        _, meta, arrays = read_artifact(bytes(payload), kind, (_WIRE_VERSION,))
    except ArtifactError as exc:
        raise ConfigError(f"malformed Paillier payload: {exc}") from exc
    if meta.get("key") != public.fingerprint:
        raise ConfigError("the payload was encrypted under another Paillier key; rebuild the roles from one client")
    try:
        rnd, batch, features = int(meta["round"]), int(meta["batch"]), int(meta["features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Paillier payload header is incomplete: {exc!r}") from exc
    if "ct" not in arrays or rnd < 0 or batch < 1 or features < 1:
        raise ConfigError("Paillier payload lacks ciphertexts or has a non-positive batch or width")
    cts = array_to_ciphertexts(arrays["ct"], public.ciphertext_bytes, public.nsquare)
    return Message(rnd, batch, features, cts, meta)


def as_output(values: NDArray[Any], bound: int) -> NDArray[Any]:
    """``values`` as int64 when ``bound`` < 2**63, else as Python ints (as ``forward_int`` returns them)."""
    return values.astype(np.int64) if bound < 2**63 else np.asarray(values, dtype=object)
