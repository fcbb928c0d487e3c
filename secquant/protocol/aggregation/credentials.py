"""Who may do what in secure aggregation: party credentials and the statements they sign.

Every party has its own Ed25519 key (``secquant keys new``); nothing rests on a
shared token (the bearer token is only a network gate).  Signatures use
:func:`secquant.signing.sign_bytes` / :func:`~secquant.signing.verify_bytes`, each
under its own context, so a signature made for one purpose never verifies for
another:

==================================  ============  ==================================================
context                             signer        over (canonical JSON)
==================================  ============  ==================================================
``aggregation/round/v1``            key-holder    :class:`RoundAnnouncement`: round id, config,
                                                  Paillier public key, party list, validity
``aggregation/command/v1``          key-holder    ``{"round_id", "action": "close", "from_state",
                                                  "issued_at"}``
``aggregation/submission/v1``       a party       ``{"round_id", "party_id", "kind", "shares",
                                                  "ciphertexts_sha256", "tag_sha256"}``
==================================  ============  ==================================================

Signed JSON travels as ``{"body": base64(canonical bytes), "signature": Signature}``
(:func:`sign_body` / :func:`open_body`): the exact signed bytes are verified
before they are parsed.  Key ids are :func:`secquant.signing.key_id`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secquant.errors import ConfigError, IntegrityError
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.errors import AuthenticationError, MessageError
from secquant.protocol.messages import canonical_json

__all__ = [
    "COMMAND_CONTEXT",
    "PARTY_LIST_TYPE",
    "ROUND_CONTEXT",
    "SUBMISSION_CONTEXT",
    "PartyList",
    "RoundAnnouncement",
    "check_party_id",
    "open_body",
    "parse_json_object",
    "raw_public_key",
    "sign_body",
    "submission_statement",
    "verify_submission",
]

ROUND_CONTEXT = "aggregation/round/v1"
COMMAND_CONTEXT = "aggregation/command/v1"
SUBMISSION_CONTEXT = "aggregation/submission/v1"
PARTY_LIST_TYPE = "secquant.aggregation.PartyList"
_PARTY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_SIGNED_BODY = 1 << 20


def check_party_id(party_id: Any) -> str:
    """A party id: 1-64 characters of ``[A-Za-z0-9._-]``, not starting with ``.``, ``_`` or ``-``.

    Raises:
        ConfigError: anything else.
    """
    if not isinstance(party_id, str) or not _PARTY_ID.match(party_id):
        raise ConfigError(f"a party id is 1-64 characters of letters, digits, '.', '_', '-', got {party_id!r}")
    return party_id


def raw_public_key(source: Any) -> bytes:
    """The raw 32 bytes of an Ed25519 public key (path, PEM, raw bytes, or a public/private key object).

    Raises:
        ConfigError: not an Ed25519 key.
    """
    from cryptography.hazmat.primitives import serialization

    from secquant.signing import load_public_key

    key = load_public_key(source)
    return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def _ed25519(raw: bytes) -> Any:
    from secquant.signing import load_public_key

    return load_public_key(bytes(raw))


@dataclass(frozen=True)
class PartyList:
    """The parties the key-holder has registered: party id -> raw Ed25519 public key (32 bytes).

    File format (JSON, written by :meth:`write`)::

        {"type": "secquant.aggregation.PartyList", "version": 1,
         "parties": {"alice": "<base64 of the raw 32-byte public key>", ...}}

    Attributes:
        parties: Party id -> raw public key; ids as :func:`check_party_id`, keys distinct.

    Raises:
        ConfigError: an invalid id, a key that is not 32 bytes, one key under two ids, or no party.
    """

    parties: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.parties, Mapping) or not self.parties:
            raise ConfigError("a party list needs at least one party")
        clean = {}
        for pid, raw in self.parties.items():
            if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
                raise ConfigError(f"party {pid!r}: a raw Ed25519 public key has 32 bytes")
            clean[check_party_id(pid)] = bytes(raw)
        if len(set(clean.values())) != len(clean):
            raise ConfigError("two parties share one public key; every party needs its own key pair")
        object.__setattr__(self, "parties", dict(sorted(clean.items())))

    @classmethod
    def from_public_keys(cls, keys: Mapping[str, Any]) -> PartyList:
        """From party id -> public key source (a ``.pub`` path, PEM or raw bytes, or a key object)."""
        return cls({pid: raw_public_key(src) for pid, src in keys.items()})

    def to_json(self) -> dict[str, str]:
        """Party id -> base64 raw key (the form inside a round announcement)."""
        return {pid: base64.b64encode(raw).decode() for pid, raw in self.parties.items()}

    @classmethod
    def from_json(cls, data: Any) -> PartyList:
        """Inverse of :meth:`to_json`.

        Raises:
            ConfigError: not an object of base64 keys.
        """
        if not isinstance(data, dict):
            raise ConfigError("a party list must be a JSON object of party id -> base64 public key")
        try:
            return cls({pid: base64.b64decode(v, validate=True) for pid, v in data.items()})
        except (binascii.Error, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"party keys must be base64 of 32 raw bytes: {exc}") from exc

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the list as JSON (atomically, mode 0644: it holds only public keys)."""
        from secquant.artifact import write_bytes_atomic

        body = {"type": PARTY_LIST_TYPE, "version": 1, "parties": self.to_json()}
        return write_bytes_atomic(path, json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> PartyList:
        """Read a file written by :meth:`write`.

        Raises:
            ConfigError: not a party list of version 1, or an invalid entry.
        """
        try:
            data = json.loads(Path(path).read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path} is not a JSON party list: {exc}") from exc
        if not isinstance(data, dict) or data.get("type") != PARTY_LIST_TYPE or data.get("version") != 1:
            raise ConfigError(f"{path} is not a {PARTY_LIST_TYPE} of version 1")
        return cls.from_json(data.get("parties"))

    def verifier(self, party_id: str) -> dict[str, Any]:
        """``{key id: public key}`` of one party, for :func:`secquant.signing.verify_bytes`.

        Raises:
            AuthenticationError: the party is not on the list.
        """
        from secquant.signing import key_id

        raw = self.parties.get(party_id) if isinstance(party_id, str) else None
        if raw is None:
            raise AuthenticationError(f"party {str(party_id)[:64]!r} is not registered for this round")
        key = _ed25519(raw)
        return {key_id(key): key}


def sign_body(body: bytes, signing_key: Any, context: str) -> dict[str, Any]:
    """``{"body": base64(body), "signature": ...}``: ``body`` signed under ``context``."""
    from secquant.signing import sign_bytes

    signature = sign_bytes(body, signing_key, context=context)
    return {"body": base64.b64encode(body).decode(), "signature": signature.to_json()}


def open_body(wire: Any, trusted: Any, context: str) -> bytes:
    """Verify a :func:`sign_body` record against ``trusted`` keys and return the signed bytes.

    Raises:
        AuthenticationError: malformed record, another context, an unknown signer or a bad signature.
    """
    from secquant.signing import Signature, verify_bytes

    if not isinstance(wire, dict) or not isinstance(wire.get("body"), str):
        raise AuthenticationError("a signed record is {'body': base64, 'signature': {...}}")
    if len(wire["body"]) > 2 * _MAX_SIGNED_BODY:
        raise AuthenticationError("signed body too large")
    try:
        body = base64.b64decode(wire["body"], validate=True)
        verify_bytes(body, Signature.from_json(wire.get("signature")), trusted, context=context)
    except (binascii.Error, ValueError, IntegrityError) as exc:
        raise AuthenticationError(f"refused a record that should be signed for {context!r}: {exc}") from None
    return body


def parse_json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` as a JSON object.

    Raises:
        MessageError: not JSON, or not an object.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MessageError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MessageError(f"{what} must be a JSON object")
    return data


@dataclass(frozen=True)
class RoundAnnouncement:
    """What the key-holder signs to open a round (context ``aggregation/round/v1``).

    Attributes:
        round_id: 22+ URL-safe characters from :mod:`secrets`, chosen by the key-holder.
        config: The round's public parameters.
        public_key: Paillier public material (``PaillierPublicKey.to_bytes()``).
        parties: Who may submit, with their keys.
        issued_at: Unix seconds.
        expires_at: Unix seconds; nobody acts on the round after this.

    Raises:
        ConfigError: an invalid field, or fewer parties than ``config.n_clients``.
    """

    round_id: str
    config: RoundConfig
    public_key: bytes
    parties: PartyList
    issued_at: float
    expires_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.round_id, str) or not re.match(r"^[A-Za-z0-9_-]{16,64}$", self.round_id):
            raise ConfigError(f"a round id is 16-64 URL-safe characters, got {self.round_id!r}")
        if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in (self.issued_at, self.expires_at)) \
                or not self.expires_at > self.issued_at:
            raise ConfigError("a round needs finite issued_at < expires_at")
        if len(self.parties.parties) < self.config.n_clients:
            raise ConfigError(f"the round plans {self.config.n_clients} clients but lists only "
                              f"{len(self.parties.parties)} parties")

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes the key-holder signs."""
        return canonical_json({
            "type": "secquant.aggregation.RoundAnnouncement", "version": 1, "round_id": self.round_id,
            "config": self.config.to_json(), "public_key": base64.b64encode(self.public_key).decode(),
            "parties": self.parties.to_json(), "issued_at": self.issued_at, "expires_at": self.expires_at})

    @classmethod
    def from_bytes(cls, body: bytes) -> RoundAnnouncement:
        """Parse (already verified) announcement bytes.

        Raises:
            MessageError: not an announcement of version 1.
            ConfigError: an invalid field.
        """
        data = parse_json_object(body, "a round announcement")
        if data.get("type") != "secquant.aggregation.RoundAnnouncement" or data.get("version") != 1:
            raise MessageError("not a secquant.aggregation.RoundAnnouncement of version 1")
        try:
            key = base64.b64decode(data["public_key"], validate=True)
            return cls(round_id=data["round_id"], config=RoundConfig.from_json(data["config"]), public_key=key,
                       parties=PartyList.from_json(data["parties"]), issued_at=data["issued_at"],
                       expires_at=data["expires_at"])
        except (KeyError, TypeError, binascii.Error) as exc:
            raise MessageError(f"malformed round announcement: {exc!r}") from exc

    def check_live(self, now: float | None = None) -> None:
        """Refuse an announcement that has expired.

        Raises:
            AuthenticationError: ``now`` is past ``expires_at`` (a replay, or a stale round).
        """
        if (time.time() if now is None else now) >= self.expires_at:
            raise AuthenticationError(f"round {self.round_id[:12]!r} expired at {self.expires_at:.0f}; "
                                      "the key-holder must open a new one")


def submission_statement(round_id: str, party_id: str, kind: str, shares: int, ciphertexts_sha256: str,
                         tag_sha256: str) -> bytes:
    """The bytes a party signs for one submission (context ``aggregation/submission/v1``).

    ``ciphertexts_sha256`` is the SHA-256 of the data ciphertexts, ``tag_sha256``
    that of the encrypted tag seed (both hex, over their wire bytes).
    """
    return canonical_json({"round_id": round_id, "party_id": party_id, "kind": kind, "shares": shares,
                           "ciphertexts_sha256": ciphertexts_sha256, "tag_sha256": tag_sha256})


def verify_submission(parties: PartyList, round_id: str, receipt: Mapping[str, Any]) -> tuple[str, str, int]:
    """Check a submission's signature by the party it names; returns (party id, kind, shares).

    ``receipt`` holds ``party_id``, ``kind``, ``shares``, ``ciphertexts_sha256``,
    ``tag_ciphertext`` (base64 of the encrypted tag seed) and ``signature`` (a
    :class:`secquant.signing.Signature` record).

    Raises:
        AuthenticationError: unknown party, or a signature that is not that party's over these fields.
        MessageError: a field is missing or of the wrong type.
    """
    from secquant.signing import Signature, verify_bytes

    if not isinstance(receipt, Mapping):
        raise MessageError("a submission receipt must be a JSON object")
    pid, kind, shares, digest, tag = (receipt.get(k) for k in ("party_id", "kind", "shares", "ciphertexts_sha256",
                                                               "tag_ciphertext"))
    if not isinstance(pid, str) or not isinstance(kind, str) or not isinstance(digest, str) \
            or not isinstance(tag, str) or isinstance(shares, bool) or not isinstance(shares, int) or shares < 1:
        raise MessageError("a submission names party_id, kind, shares (int >= 1), ciphertexts_sha256 and "
                           "tag_ciphertext")
    try:
        tag_digest = hashlib.sha256(base64.b64decode(tag, validate=True)).hexdigest()
    except (binascii.Error, ValueError) as exc:
        raise MessageError(f"tag_ciphertext must be base64: {exc}") from None
    trusted = parties.verifier(pid)
    try:
        verify_bytes(submission_statement(round_id, pid, kind, shares, digest, tag_digest),
                     Signature.from_json(receipt.get("signature")), trusted, context=SUBMISSION_CONTEXT)
    except IntegrityError as exc:
        raise AuthenticationError(f"submission of {pid!r} is not signed by that party's key: {exc}") from None
    return pid, kind, shares
