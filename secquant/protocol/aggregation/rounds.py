"""The aggregator's round state machine (one round; the table of rounds is :mod:`.table`).

A round keeps the key-holder's signed announcement, the public key, the
running homomorphic sum (product of ciphertexts mod n²), the ids of the parties
whose messages are in it and their signed receipts; it never keeps individual
ciphertexts and never sees a plaintext.

States: ``collecting`` → ``ready`` (all planned clients arrived, or enough
noise shares at close) | ``topup`` (too few shares, policy top_up: survivors
are assigned whole extra shares) | ``refused`` (too few shares, policy refuse;
or a top-up phase closed incomplete).  ``topup`` → ``ready`` once every
assigned top-up arrived.  Only the key-holder's signed command closes a round
(:class:`~secquant.protocol.aggregation.table.RoundTable`).

Each party is counted once: a second update from a party is refused (409)
whatever it carries, so one credential is one noise share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from secquant.protocol.aggregation.config import DropoutPolicy, RoundConfig
from secquant.protocol.aggregation.credentials import PartyList
from secquant.protocol.aggregation.encoding import encode_ciphertexts
from secquant.protocol.aggregation.messages import AGGREGATE, FRAME_VERSION, RoundState
from secquant.protocol.errors import MessageError, RoundStateError
from secquant.protocol.messages import Frame, canonical_json, encode_frame

__all__ = ["Round", "RoundStatus", "SignedRecord"]


class SignedRecord(BaseModel):
    """A key-holder's signed JSON (``POST /v1/rounds`` and ``POST /v1/rounds/{id}/close`` bodies).

    ``body`` is base64 of canonical JSON bytes; ``signature`` a
    :class:`secquant.signing.Signature` record over them.
    """

    body: str
    signature: dict[str, Any]


class RoundStatus(BaseModel):
    """Answer of ``GET /v1/rounds/{id}`` (and of open/close).

    Only ``announcement`` is signed (by the key-holder); clients take the config,
    the public key and the party list from it and nothing else.  The rest is the
    aggregator's unsigned account of the round.
    """

    round_id: str
    state: str
    announcement: dict[str, Any]
    contributors: list[str]
    noise_shares: int
    topup_assignments: dict[str, int]
    topups_received: list[str]
    reason: str


@dataclass
class Round:
    """One round's public state and running encrypted sum (callers hold the table's lock).

    Attributes:
        rid: Round id (chosen and signed by the key-holder).
        config: The round's parameters.
        n: Paillier modulus.
        public_key: base64 of the Paillier public material.
        expires: Unix seconds after which the table drops the round.
        parties: Who may submit (from the signed announcement); None only in unit tests of the state machine.
        announcement: The key-holder's signed announcement, as received (served to clients).
    """

    rid: str
    config: RoundConfig
    n: int
    public_key: str
    expires: float
    parties: PartyList | None = None
    announcement: dict[str, Any] = field(default_factory=dict)
    state: RoundState = RoundState.COLLECTING
    acc: list[int] = field(default_factory=list)
    contributors: list[str] = field(default_factory=list)
    noise_shares: int = 0
    assignments: dict[str, int] = field(default_factory=dict)
    topups: list[str] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def status(self) -> RoundStatus:
        """The JSON answer describing this round."""
        return RoundStatus(round_id=self.rid, state=self.state.value, announcement=dict(self.announcement),
                           contributors=list(self.contributors), noise_shares=self.noise_shares,
                           topup_assignments=dict(self.assignments), topups_received=list(self.topups),
                           reason=self.reason)

    def _add(self, cts: list[int], receipt: dict[str, Any] | None) -> None:
        n2 = self.n * self.n
        self.acc = cts if not self.acc else [a * c % n2 for a, c in zip(self.acc, cts)]
        if receipt is not None:
            self.receipts.append(dict(receipt))

    def expect_update(self, cid: str) -> None:
        """Check that an update from ``cid`` is acceptable now (before its ciphertexts are read).

        Raises:
            RoundStateError: not collecting, a repeated party, or the round is full.
        """
        if self.state is not RoundState.COLLECTING:
            raise RoundStateError(f"round is {self.state.value}; updates are accepted only while collecting")
        if cid in self.contributors:
            raise RoundStateError(f"party {cid!r} already submitted to this round; one submission per party")
        if len(self.contributors) >= self.config.n_clients:
            raise RoundStateError(f"the round already has its {self.config.n_clients} clients")

    def add_update(self, cid: str, cts: list[int], receipt: dict[str, Any] | None = None) -> None:
        """Add a party's update (one noise share); decide once every planned client arrived.

        Raises:
            RoundStateError: as :meth:`expect_update`.
        """
        self.expect_update(cid)
        self._add(cts, receipt)
        self.contributors.append(cid)
        self.noise_shares += 1
        if len(self.contributors) == self.config.n_clients:
            self.decide()

    def expect_topup(self, cid: str, shares: int | None = None) -> None:
        """Check that a top-up of ``shares`` from ``cid`` is expected now.

        Raises:
            RoundStateError: the round is not in its top-up phase, or ``cid`` has none (left) to send.
            MessageError: ``shares`` is not the assigned count.
        """
        if self.state is not RoundState.TOPUP or cid not in self.assignments or cid in self.topups:
            raise RoundStateError(f"no top-up is expected from {cid!r} (round is {self.state.value})")
        if shares is not None and shares != self.assignments[cid]:
            raise MessageError(f"party {cid!r} was assigned {self.assignments[cid]} shares, sent {shares}")

    def add_topup(self, cid: str, shares: int, cts: list[int], receipt: dict[str, Any] | None = None) -> None:
        """Add a survivor's assigned extra noise shares; ready once every assignment arrived.

        Raises:
            RoundStateError: no top-up is expected from ``cid``.
            MessageError: ``shares`` is not the assigned count.
        """
        self.expect_topup(cid, shares)
        self._add(cts, receipt)
        self.topups.append(cid)
        self.noise_shares += shares
        if set(self.topups) == set(self.assignments):
            self.state = RoundState.READY

    def decide(self) -> None:
        """Close collection: ready, topup or refused."""
        need = self.config.required_shares
        k = len(self.contributors)
        if self.noise_shares >= need and k >= self.config.required_parties:
            self.state = RoundState.READY
        elif k == 0:
            self.state, self.reason = RoundState.REFUSED, "no client contributed"
        elif k < self.config.required_parties:
            self.state = RoundState.REFUSED
            self.reason = f"only {k} distinct parties contributed; the round needs {self.config.required_parties} " \
                          f"(min_parties) before any top-up can count"
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
        """The ``Aggregate`` frame of the encrypted sum, with every summed submission's signed receipt.

        Raises:
            RoundStateError: the round is not ready.
        """
        if self.state is not RoundState.READY:
            raise RoundStateError(f"round is {self.state.value}, not ready{': ' + self.reason if self.reason else ''}")
        receipts = canonical_json(self.receipts)
        meta = {"round_id": self.rid, "contributors": list(self.contributors), "noise_shares": self.noise_shares,
                "topups": list(self.topups), "ciphertexts": len(self.acc), "receipts_bytes": len(receipts)}
        return encode_frame(Frame(AGGREGATE, FRAME_VERSION, meta, encode_ciphertexts(self.acc, self.n) + receipts))
