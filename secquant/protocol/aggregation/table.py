"""The aggregator's table of rounds: only the key-holder opens and closes, only registered parties submit.

* ``open``: a :class:`~secquant.protocol.aggregation.rounds.SignedRecord` whose
  body is a :class:`~secquant.protocol.aggregation.credentials.RoundAnnouncement`
  signed by the pinned key-holder key (context ``aggregation/round/v1``).
  A round id is accepted once, and never after its announcement expired.
* ``close``: a signed command ``{"round_id", "action": "close", "from_state",
  "issued_at"}`` (context ``aggregation/command/v1``); it acts only in the state
  it names, so a replay does nothing.
* ``submit``: a ``Submission`` v2 frame signed by a party listed in the round's
  announcement (context ``aggregation/submission/v1``); the aggregator keeps
  the signed receipt and hands it to the key-holder with the sum.

Everything happens behind one lock; expired rounds are dropped on every access.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from typing import Any

from secquant.backends.paillier.keys import load_public_key
from secquant.errors import ConfigError
from secquant.protocol.aggregation.credentials import (
    COMMAND_CONTEXT,
    ROUND_CONTEXT,
    RoundAnnouncement,
    open_body,
    parse_json_object,
    verify_submission,
)
from secquant.protocol.aggregation.encoding import ciphertext_width, decode_ciphertexts
from secquant.protocol.aggregation.messages import RoundState, SubmissionKind
from secquant.protocol.aggregation.rounds import Round, RoundStatus, SignedRecord
from secquant.protocol.errors import (
    AuthenticationError,
    MessageError,
    RoundStateError,
    SessionLimitError,
    SessionNotFoundError,
)
from secquant.protocol.messages import Frame, require, sha256_hex

__all__ = ["RoundTable", "close_command"]


def close_command(round_id: str, from_state: RoundState) -> bytes:
    """The bytes of a close command (the key-holder signs them under ``aggregation/command/v1``)."""
    from secquant.protocol.messages import canonical_json

    return canonical_json({"round_id": round_id, "action": "close", "from_state": from_state.value,
                           "issued_at": time.time(), "nonce": secrets.token_hex(8)})


def _submission_kind(value: str) -> SubmissionKind:
    try:
        return SubmissionKind(value)
    except ValueError:
        raise MessageError(f"submission kind must be 'update' or 'topup', got {value!r}") from None


class RoundTable:
    """The aggregator's rounds.

    Args:
        max_rounds: Most rounds held at once (>= 1).
        round_ttl: Seconds a round lives at most after it is opened (> 0); the
            announcement's own ``expires_at`` ends it earlier.
        keyholder_keys: ``{key id: Ed25519 public key}`` of the key-holder(s) whose
            signed commands open and close rounds.
    """

    def __init__(self, max_rounds: int, round_ttl: float, keyholder_keys: dict[str, Any]) -> None:
        self.max_rounds, self.round_ttl, self.keyholder_keys = max_rounds, round_ttl, dict(keyholder_keys)
        self._rounds: dict[str, Round] = {}
        self._used: dict[str, float] = {}  # round id -> announcement expiry: refuse re-opening
        self._lock = threading.Lock()

    def _purge_locked(self) -> None:
        now = time.time()
        for rid in [k for k, r in self._rounds.items() if r.expires <= now]:
            del self._rounds[rid]
        for rid in [k for k, t in self._used.items() if t <= now]:
            del self._used[rid]

    def _get_locked(self, rid: str) -> Round:
        self._purge_locked()
        rnd = self._rounds.get(rid)
        if rnd is None:
            raise SessionNotFoundError(f"unknown or expired round {rid[:12]!r}")
        return rnd

    def open(self, record: SignedRecord) -> RoundStatus:
        """Open a round from the key-holder's signed announcement.

        Raises:
            AuthenticationError: not signed by the key-holder, or expired (401).
            MessageError: not an announcement.
            ConfigError: invalid config or party list, or a key of other size than ``key_bits``.
            KeyMaterialError: the material holds a private key (403).
            RoundStateError: the round id was used already (409).
            SessionLimitError: ``max_rounds`` rounds are open.
        """
        wire = record.model_dump()
        ann = RoundAnnouncement.from_bytes(open_body(wire, self.keyholder_keys, ROUND_CONTEXT))
        ann.check_live()
        cfg = ann.config
        key = load_public_key(ann.public_key, allow_insecure=cfg.allow_insecure_key_bits)  # refuses private keys
        if key.bits != cfg.key_bits:
            raise ConfigError(f"the public key has {key.bits} bits; the config says key_bits={cfg.key_bits}")
        with self._lock:
            self._purge_locked()
            if ann.round_id in self._used:
                raise RoundStateError(f"round id {ann.round_id[:12]!r} was opened already; a round opens once")
            if len(self._rounds) >= self.max_rounds:
                raise SessionLimitError(f"the aggregator holds its maximum of {self.max_rounds} rounds")
            expires = min(ann.expires_at, time.time() + self.round_ttl)
            self._used[ann.round_id] = ann.expires_at
            self._rounds[ann.round_id] = Round(
                rid=ann.round_id, config=cfg, n=int(key.n), public_key=base64.b64encode(ann.public_key).decode(),
                expires=expires, parties=ann.parties, announcement=wire)
            return self._rounds[ann.round_id].status()

    def status(self, rid: str) -> RoundStatus:
        """The round's state (404 for an unknown or expired id)."""
        with self._lock:
            return self._get_locked(rid).status()

    def submit(self, rid: str, frame: Frame) -> RoundStatus:
        """Apply a signed ``Submission`` frame (an update or a top-up) to round ``rid``.

        Raises:
            SessionNotFoundError: unknown or expired round.
            AuthenticationError: the party is not listed, or the signature is not its own (401).
            MessageError: malformed frame, ciphertexts or kind; the frame names another round.
            RoundStateError: the round does not accept this submission now, or the party already sent it (409).
        """
        meta, payload = frame.meta, bytes(frame.payload)
        if require(meta, "round_id", str, "Submission") != rid:
            raise MessageError("the submission names another round")
        for key, kind_type in (("party_id", str), ("kind", str), ("shares", int)):
            require(meta, key, kind_type, "Submission")
        with self._lock:
            rnd = self._get_locked(rid)
            if rnd.parties is None:
                raise AuthenticationError("this round has no party list")
            count, width = rnd.config.ciphertexts_per_message(), ciphertext_width(rnd.n)
            split = width * count
            if len(payload) != split + width:
                raise MessageError(f"expected {count} data ciphertexts and 1 tag ciphertext of {width} bytes "
                                   f"({split + width} bytes), got {len(payload)} bytes (truncated, or another key?)")
            receipt = {"party_id": meta["party_id"], "kind": meta["kind"], "shares": meta["shares"],
                       "ciphertexts_sha256": sha256_hex(payload[:split]),
                       "tag_ciphertext": base64.b64encode(payload[split:]).decode(), "signature": meta.get("signature")}
            pid, kind_name, shares = verify_submission(rnd.parties, rid, receipt)
            kind = _submission_kind(kind_name)
            if kind is SubmissionKind.UPDATE:
                if shares != 1:
                    raise MessageError(f"an update carries exactly 1 noise share, the submission says {shares}")
                rnd.expect_update(pid)  # a duplicate is a 409 before its ciphertexts are decoded
            else:
                rnd.expect_topup(pid, shares)
            cts = decode_ciphertexts(payload, rnd.n, count + 1)[:count]  # every value a unit below n², or 400
            if kind is SubmissionKind.UPDATE:
                rnd.add_update(pid, cts, receipt)
            else:
                rnd.add_topup(pid, shares, cts, receipt)
            return rnd.status()

    def close(self, rid: str, record: SignedRecord) -> RoundStatus:
        """Apply the key-holder's signed close command to round ``rid``.

        Raises:
            AuthenticationError: not signed by the key-holder (401).
            MessageError: the command names another round or action.
            RoundStateError: the round is not in the state the command names (409; e.g. a replay).
        """
        command = parse_json_object(open_body(record.model_dump(), self.keyholder_keys, COMMAND_CONTEXT), "a command")
        if command.get("round_id") != rid or command.get("action") != "close":
            raise MessageError("the signed command does not close this round")
        with self._lock:
            rnd = self._get_locked(rid)
            if command.get("from_state") != rnd.state.value:
                raise RoundStateError(f"the close command is for state {command.get('from_state')!r}; "
                                      f"the round is {rnd.state.value}")
            rnd.close()
            return rnd.status()

    def aggregate(self, rid: str) -> bytes:
        """The ``Aggregate`` frame of round ``rid`` (state ``ready`` only)."""
        with self._lock:
            return self._get_locked(rid).aggregate_frame()

