"""The aggregator's rounds: a state machine per round and a thread-safe table of rounds.

A round keeps the public key, the running homomorphic sum (product of
ciphertexts mod n²) and the ids of the clients whose messages are in it; it
never keeps individual ciphertexts and never sees a plaintext.

States: ``collecting`` → ``ready`` (all planned clients arrived, or enough
noise shares at close) | ``topup`` (too few shares, policy top_up: survivors
are assigned whole extra shares) | ``refused`` (too few shares, policy refuse;
or a top-up phase closed incomplete).  ``topup`` → ``ready`` once every
assigned top-up arrived.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from secquant.backends.paillier.keys import load_public_key
from secquant.errors import ConfigError
from secquant.protocol.aggregation.config import DropoutPolicy, RoundConfig
from secquant.protocol.aggregation.encoding import decode_ciphertexts, encode_ciphertexts
from secquant.protocol.aggregation.messages import AGGREGATE, RoundState, SubmissionKind
from secquant.protocol.errors import MessageError, RoundStateError, SessionLimitError, SessionNotFoundError
from secquant.protocol.messages import Frame, encode_frame, require

__all__ = ["Round", "RoundOpen", "RoundStatus", "RoundTable"]


class RoundOpen(BaseModel):
    """Body of ``POST /v1/rounds``."""

    config: dict[str, Any]
    public_key: str


class RoundStatus(BaseModel):
    """Answer of ``GET /v1/rounds/{id}`` (and of open/close)."""

    round_id: str
    state: str
    config: dict[str, Any]
    public_key: str
    contributors: list[str]
    noise_shares: int
    topup_assignments: dict[str, int]
    topups_received: list[str]
    reason: str


@dataclass
class Round:
    """One round's public state and running encrypted sum (callers hold the table's lock)."""

    rid: str
    config: RoundConfig
    n: int
    public_key: str
    expires: float
    state: RoundState = RoundState.COLLECTING
    acc: list[int] = field(default_factory=list)
    contributors: list[str] = field(default_factory=list)
    noise_shares: int = 0
    assignments: dict[str, int] = field(default_factory=dict)
    topups: list[str] = field(default_factory=list)
    reason: str = ""

    def status(self) -> RoundStatus:
        """The JSON answer describing this round."""
        return RoundStatus(round_id=self.rid, state=self.state.value, config=self.config.to_json(),
                           public_key=self.public_key,
                           contributors=list(self.contributors), noise_shares=self.noise_shares,
                           topup_assignments=dict(self.assignments), topups_received=list(self.topups),
                           reason=self.reason)

    def _add(self, cts: list[int]) -> None:
        n2 = self.n * self.n
        self.acc = cts if not self.acc else [a * c % n2 for a, c in zip(self.acc, cts)]

    def add_update(self, cid: str, cts: list[int]) -> None:
        """Add a client's update (one noise share); decide once every planned client arrived.

        Raises:
            RoundStateError: not collecting, a repeated client, or the round is full.
        """
        if self.state is not RoundState.COLLECTING:
            raise RoundStateError(f"round is {self.state.value}; updates are accepted only while collecting")
        if cid in self.contributors:
            raise RoundStateError(f"client {cid!r} already submitted to this round")
        if len(self.contributors) >= self.config.n_clients:
            raise RoundStateError(f"the round already has its {self.config.n_clients} clients")
        self._add(cts)
        self.contributors.append(cid)
        self.noise_shares += 1
        if len(self.contributors) == self.config.n_clients:
            self.decide()

    def expect_topup(self, cid: str) -> None:
        """Check that a top-up from ``cid`` is expected now.

        Raises:
            RoundStateError: the round is not in its top-up phase, or ``cid`` has none (left) to send.
        """
        if self.state is not RoundState.TOPUP or cid not in self.assignments or cid in self.topups:
            raise RoundStateError(f"no top-up is expected from {cid!r} (round is {self.state.value})")

    def add_topup(self, cid: str, shares: int, cts: list[int]) -> None:
        """Add a survivor's assigned extra noise shares; ready once every assignment arrived.

        Raises:
            RoundStateError: no top-up is expected from ``cid``.
            MessageError: ``shares`` is not the assigned count.
        """
        self.expect_topup(cid)
        if shares != self.assignments[cid]:
            raise MessageError(f"client {cid!r} was assigned {self.assignments[cid]} shares, sent {shares}")
        self._add(cts)
        self.topups.append(cid)
        self.noise_shares += shares
        if set(self.topups) == set(self.assignments):
            self.state = RoundState.READY

    def decide(self) -> None:
        """Close collection: ready, topup or refused."""
        need = self.config.required_shares
        k = len(self.contributors)
        if self.noise_shares >= need:
            self.state = RoundState.READY
        elif k == 0:
            self.state, self.reason = RoundState.REFUSED, "no client contributed"
        elif self.config.dropout_policy is DropoutPolicy.REFUSE:
            self.state = RoundState.REFUSED
            self.reason = f"only {k} of {self.config.n_clients} clients contributed; the sum would carry " \
                          f"{self.noise_shares} < {need} noise shares and the policy is refuse"
        else:
            missing = need - self.noise_shares
            order = sorted(self.contributors)
            self.assignments = {cid: missing // k + (i < missing % k) for i, cid in enumerate(order)}
            self.assignments = {c: s for c, s in self.assignments.items() if s > 0}
            self.state = RoundState.TOPUP

    def close(self) -> None:
        """Stop collecting (dropouts are whoever has not submitted) or end an incomplete top-up."""
        if self.state is RoundState.COLLECTING:
            self.decide()
        elif self.state is RoundState.TOPUP:
            missing = sorted(set(self.assignments) - set(self.topups))
            self.state, self.reason = RoundState.REFUSED, f"top-up incomplete: no noise from {missing}"

    def aggregate_frame(self) -> bytes:
        """The ``Aggregate`` frame of the encrypted sum.

        Raises:
            RoundStateError: the round is not ready.
        """
        if self.state is not RoundState.READY:
            raise RoundStateError(f"round is {self.state.value}, not ready{': ' + self.reason if self.reason else ''}")
        meta = {"round_id": self.rid, "contributors": list(self.contributors), "noise_shares": self.noise_shares,
                "topups": list(self.topups), "ciphertexts": len(self.acc)}
        return encode_frame(Frame(AGGREGATE, 1, meta, encode_ciphertexts(self.acc, self.n)))


def _submission_kind(value: str) -> SubmissionKind:
    try:
        return SubmissionKind(value)
    except ValueError:
        raise MessageError(f"submission kind must be 'update' or 'topup', got {value!r}") from None


class RoundTable:
    """The aggregator's rounds, behind one lock; expired rounds are dropped on every access.

    Args:
        max_rounds: Most rounds held at once (>= 1).
        round_ttl: Seconds a round lives after it is opened (> 0).
    """

    def __init__(self, max_rounds: int, round_ttl: float) -> None:
        self.max_rounds, self.round_ttl = max_rounds, round_ttl
        self._rounds: dict[str, Round] = {}
        self._lock = threading.Lock()

    def _purge_locked(self) -> None:
        now = time.time()
        for rid in [k for k, r in self._rounds.items() if r.expires <= now]:
            del self._rounds[rid]

    def _get_locked(self, rid: str) -> Round:
        self._purge_locked()
        rnd = self._rounds.get(rid)
        if rnd is None:
            raise SessionNotFoundError(f"unknown or expired round {rid[:12]!r}")
        return rnd

    def open(self, body: RoundOpen) -> RoundStatus:
        """Open a round with its public configuration and the key-holder's Paillier public key.

        Raises:
            ConfigError: invalid config, or a key of other size than ``key_bits``.
            MessageError: the key is not base64.
            KeyMaterialError: the material holds a private key (403).
            SessionLimitError: ``max_rounds`` rounds are open.
        """
        cfg = RoundConfig.from_json(body.config)
        try:
            material = base64.b64decode(body.public_key, validate=True)
        except ValueError as exc:
            raise MessageError(f"public_key must be base64: {exc}") from exc
        key = load_public_key(material, allow_insecure=cfg.allow_insecure_key_bits)  # refuses private keys (403)
        if key.bits != cfg.key_bits:
            raise ConfigError(f"the public key has {key.bits} bits; the config says key_bits={cfg.key_bits}")
        with self._lock:
            self._purge_locked()
            if len(self._rounds) >= self.max_rounds:
                raise SessionLimitError(f"the aggregator holds its maximum of {self.max_rounds} rounds")
            rid = secrets.token_urlsafe(16)
            self._rounds[rid] = Round(rid=rid, config=cfg, n=int(key.n), public_key=body.public_key,
                                      expires=time.time() + self.round_ttl)
            return self._rounds[rid].status()

    def status(self, rid: str) -> RoundStatus:
        """The round's state (404 for an unknown or expired id)."""
        with self._lock:
            return self._get_locked(rid).status()

    def submit(self, rid: str, frame: Frame) -> RoundStatus:
        """Apply a ``Submission`` frame (an update or a top-up) to round ``rid``.

        Raises:
            SessionNotFoundError: unknown or expired round.
            MessageError: malformed frame, ciphertexts or kind; the frame names another round.
            RoundStateError: the round does not accept this submission now.
        """
        cid = require(frame.meta, "client_id", str, "Submission")
        kind = require(frame.meta, "kind", str, "Submission")
        if require(frame.meta, "round_id", str, "Submission") != rid:
            raise MessageError("the submission names another round")
        with self._lock:
            rnd = self._get_locked(rid)
            cts = decode_ciphertexts(bytes(frame.payload), rnd.n, rnd.config.ciphertexts_per_message())
            if _submission_kind(kind) is SubmissionKind.UPDATE:
                rnd.add_update(cid, cts)
            else:
                rnd.expect_topup(cid)  # before reading ``shares``: a late top-up is a state error
                rnd.add_topup(cid, require(frame.meta, "shares", int, "Submission"), cts)
            return rnd.status()

    def close(self, rid: str) -> RoundStatus:
        """Close collection or an incomplete top-up phase of round ``rid``."""
        with self._lock:
            rnd = self._get_locked(rid)
            rnd.close()
            return rnd.status()

    def aggregate(self, rid: str) -> bytes:
        """The ``Aggregate`` frame of round ``rid`` (state ``ready`` only)."""
        with self._lock:
            return self._get_locked(rid).aggregate_frame()
