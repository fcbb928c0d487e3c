"""The key-holder of secure aggregation: opens and closes rounds by signature, decrypts only verified sums.

The key-holder has two keys: the Paillier key pair (made here; the private
half never leaves the object) and an Ed25519 signing key whose public half
the aggregator and every client pin.  It signs each round's announcement
(round id, config, Paillier public key, party list, validity) and each close
command (:meth:`KeyHolder.open_round`, :meth:`KeyHolder.close_round`).  Before
it decrypts (:meth:`KeyHolder.release`) it verifies every summed submission's
signature again with its own party list (it does not trust the aggregator),
counts one noise share per distinct verified party plus their verified
top-ups, and refuses unless that count reaches ``min_noise_shares`` from at
least ``min_parties`` parties.  After decrypting, it checks the integrity tags
(:mod:`.encoding`): the sum must contain exactly the verified submissions, once
each, or nothing is released.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.protocol.aggregation.client import round_status
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.credentials import (
    COMMAND_CONTEXT,
    ROUND_CONTEXT,
    PartyList,
    RoundAnnouncement,
    sign_body,
    verify_submission,
)
from secquant.protocol.aggregation.encoding import (
    TAG_SEED_BYTES,
    ciphertext_width,
    decode_ciphertexts,
    decrypt_plaintexts,
    message_tags,
    to_residues,
)
from secquant.protocol.aggregation.messages import AGGREGATE, FRAME_VERSION, RoundState, SubmissionKind
from secquant.protocol.aggregation.table import close_command
from secquant.protocol.errors import AuthenticationError, MessageError, ReleaseRefusedError
from secquant.protocol.messages import decode_frame
from secquant.protocol.transport import http_client, raise_for_status

__all__ = ["KeyHolder", "Release", "check_tags", "count_verified_shares"]


@dataclass
class Release:
    """What the key-holder releases.

    Attributes:
        round_id: The round.
        residues: The noisy sum mod 2^b, int64 in ``[0, 2^b)``, shape (dim,).
        estimate: The noisy sum in update units: centered residues times γ.
        contributors: Parties whose signed updates are in the sum (verified by the key-holder).
        noise_shares: N_Z(0, σ²) shares in the sum by the key-holder's own count (>= ``min_noise_shares``).
        epsilon: ε at the round's δ (KLS Prop. 14 via dp-accounting) for ``noise_shares`` honest shares.
        timings: Seconds spent: ``close``, ``fetch``, ``decrypt``.
    """

    round_id: str
    residues: NDArray[np.int64]
    estimate: NDArray[np.float64]
    contributors: list[str]
    noise_shares: int
    epsilon: float
    timings: dict[str, float] = field(default_factory=dict)


def count_verified_shares(parties: PartyList, round_id: str, receipts: Any,
                          config: RoundConfig) -> tuple[list[str], int, list[bytes]]:
    """Verify every receipt and count noise shares: one per distinct party's update, plus their top-ups.

    Args:
        parties: The party list the key-holder signed for this round.
        round_id: The round.
        receipts: The aggregator's list of receipts (party_id, kind, shares, ciphertexts_sha256, signature).
        config: The round.

    Returns:
        (contributing party ids, verified noise shares, the encrypted tag seed of every receipt).

    Raises:
        ReleaseRefusedError: a receipt is not signed by the party it names, a party appears twice
            for the same kind, a top-up comes from a non-contributor, or more updates than ``n_clients``.
    """
    if not isinstance(receipts, list):
        raise ReleaseRefusedError("the aggregator's receipts are not a list")
    updates: list[str] = []
    topups: dict[str, int] = {}
    seeds: list[bytes] = []
    for receipt in receipts:
        try:
            pid, kind, shares = verify_submission(parties, round_id, receipt)
            kind_enum = SubmissionKind(kind)
        except (AuthenticationError, MessageError, ValueError) as exc:
            raise ReleaseRefusedError(f"a summed submission does not verify: {exc}") from None
        seeds.append(base64.b64decode(receipt["tag_ciphertext"]))
        if kind_enum is SubmissionKind.UPDATE:
            if pid in updates or shares != 1:
                raise ReleaseRefusedError(f"party {pid!r} appears twice (or with {shares} shares) among the updates")
            updates.append(pid)
        else:
            if pid in topups:
                raise ReleaseRefusedError(f"party {pid!r} appears twice among the top-ups")
            topups[pid] = shares
    if len(updates) > config.n_clients:
        raise ReleaseRefusedError(f"{len(updates)} updates in a round planned for {config.n_clients}")
    strangers = sorted(set(topups) - set(updates))
    if strangers:
        raise ReleaseRefusedError(f"top-ups from parties without an update: {strangers}")
    return updates, len(updates) + sum(min(s, config.required_shares) for s in topups.values()), seeds


def check_tags(tags: NDArray[np.int64], seed_cts: list[bytes], config: RoundConfig, private_key: Any) -> None:
    """Check that the sum's tag slots are the sum of the verified submissions' tags.

    Raises:
        ReleaseRefusedError: a seed does not decrypt to 128 bits, or the tags differ: the aggregator
            dropped, repeated or replaced a submission in the product.
    """
    import gmpy2

    from secquant.backends.paillier.crypto import Decryptor

    n = int(private_key.public.n)
    cts = [gmpy2.mpz(int.from_bytes(c, "big")) for c in seed_cts]
    expected = np.zeros(config.ciphertexts_per_message(), dtype=object)
    for seed in Decryptor(private_key).decrypt(cts):
        value = int(seed) % n
        if value >> (8 * TAG_SEED_BYTES):
            raise ReleaseRefusedError("a submission's tag seed is not a 128-bit value; refusing the sum")
        expected = expected + message_tags(value.to_bytes(TAG_SEED_BYTES, "big"), config).astype(object)
    if not np.array_equal(np.mod(expected, config.modulus).astype(np.int64), tags):
        raise ReleaseRefusedError("the sum does not contain exactly the signed submissions, once each (integrity "
                                  "tags differ): the aggregator dropped, repeated or replaced one; nothing released")


class KeyHolder:
    """Holds the Paillier secret key; signs rounds; decrypts only verified sums that carry enough noise.

    Args:
        signing_key: The key-holder's Ed25519 private key (``.key`` file of mode 0600, PEM, or key object);
            its public half is what the aggregator and clients pin.
        parties: The registered parties (a :class:`PartyList` or a path to its JSON file).
        key_bits: Paillier modulus bits (>= 2048 unless ``allow_insecure_key_bits``; 3072 default).
        allow_insecure_key_bits: Explicit, logged opt-out for small test keys.

    Raises:
        ConfigError: ``key_bits`` is too small, or the keys or the party list are invalid.
    """

    def __init__(self, signing_key: Any, parties: PartyList | Any, key_bits: int = 3072, *,
                 allow_insecure_key_bits: bool = False) -> None:
        from secquant.backends.paillier.keys import generate_keypair
        from secquant.signing import key_id, load_private_key

        low = 512 if allow_insecure_key_bits else 2048
        if isinstance(key_bits, bool) or not isinstance(key_bits, int) or not low <= key_bits <= 8192:
            raise ConfigError(f"key_bits must be an int in [{low}, 8192], got {key_bits!r}")
        self._signing_key = load_private_key(signing_key)
        self.verify_key = self._signing_key.public_key()
        self.key_id = key_id(self.verify_key)
        self.parties = parties if isinstance(parties, PartyList) else PartyList.read(parties)
        self._private_key = generate_keypair(key_bits, allow_insecure=allow_insecure_key_bits)
        self.public_key = self._private_key.public
        self.key_bits = int(self.public_key.bits)
        self._rounds: dict[str, RoundAnnouncement] = {}
        self._released: set[str] = set()

    def announce(self, config: RoundConfig, *, ttl: float = 3600.0, parties: PartyList | None = None
                 ) -> tuple[RoundAnnouncement, dict[str, Any]]:
        """Make and sign a round announcement (a fresh round id from :mod:`secrets`).

        Returns:
            (the announcement, the signed record to ``POST /v1/rounds``).

        Raises:
            ConfigError: ``config.key_bits`` differs from this key, ``ttl`` <= 0, or too few parties.
        """
        if config.key_bits != self.key_bits:
            raise ConfigError(f"config.key_bits={config.key_bits} but this key has {self.key_bits} bits")
        if not ttl > 0:
            raise ConfigError(f"ttl must be > 0 seconds, got {ttl!r}")
        now = time.time()
        ann = RoundAnnouncement(round_id=secrets.token_urlsafe(16), config=config,
                                public_key=self.public_key.to_bytes(), parties=parties or self.parties,
                                issued_at=now, expires_at=now + ttl)
        return ann, sign_body(ann.to_bytes(), self._signing_key, ROUND_CONTEXT)

    def open_round(self, url: str, token: str | None, config: RoundConfig, *, ttl: float = 3600.0,
                   parties: PartyList | None = None, verify: Any = True) -> str:
        """Sign a round announcement and open the round at the aggregator; returns the round id.

        Args:
            url: Aggregator URL.
            token: The aggregator's bearer token, or None.
            config: The round's parameters.
            ttl: Seconds the announcement stays valid (> 0).
            parties: Who may submit (default: every registered party).
            verify: TLS verification.

        Raises:
            ConfigError: as :meth:`announce`.
            RemoteError: the aggregator refused.
        """
        ann, record = self.announce(config, ttl=ttl, parties=parties)
        with http_client(url, token, verify=verify) as http:
            raise_for_status(http.post("/v1/rounds", json=record))
        self._rounds[ann.round_id] = ann
        return ann.round_id

    def close_round(self, http: Any, round_id: str, from_state: RoundState) -> dict[str, Any]:
        """Send a signed close command for ``round_id`` in state ``from_state``; returns the new status.

        Raises:
            RemoteError: the aggregator refused.
        """
        record = sign_body(close_command(round_id, from_state), self._signing_key, COMMAND_CONTEXT)
        r = http.post(f"/v1/rounds/{round_id}/close", json=record)
        raise_for_status(r)
        return dict(r.json())

    def release(self, url: str, token: str | None, round_id: str, *, topup_wait: float = 60.0,
                verify: Any = True) -> Release:
        """Close the round, wait for any top-up, verify every submission, check the noise, decrypt (once).

        Args:
            url: Aggregator URL.
            token: The aggregator's bearer token, or None.
            round_id: From :meth:`open_round`.
            topup_wait: Seconds to wait for survivors' top-ups (>= 0) before closing the top-up phase.
            verify: TLS verification.

        Raises:
            ReleaseRefusedError: the verified submissions carry fewer noise shares than required, a
                receipt does not verify, the round was refused, or it was already released.
            RemoteError: the aggregator refused a request.
        """
        if round_id in self._released:
            raise ReleaseRefusedError("this round was already released (or refused after decryption); each round "
                                      "is decrypted at most once")
        ann = self._rounds.get(round_id)
        if ann is None:
            raise ConfigError("unknown round: open it with this key-holder first")
        config = ann.config
        t0 = time.perf_counter()
        with http_client(url, token, verify=verify) as http:
            self._close_and_wait(http, round_id, topup_wait)
            t1 = time.perf_counter()
            r = http.get(f"/v1/rounds/{round_id}/aggregate")
            raise_for_status(r)
        t2 = time.perf_counter()
        cts, receipts = self._open_aggregate(r.content, round_id, config)
        contributors, shares, seeds = count_verified_shares(ann.parties, round_id, receipts, config)
        if shares < config.required_shares or len(contributors) < config.required_parties:
            raise ReleaseRefusedError(f"the verified submissions carry {shares} noise shares from "
                                      f"{len(contributors)} distinct parties; the accounting needs "
                                      f"{config.required_shares} shares from at least {config.required_parties}")
        self._released.add(round_id)  # decrypted at most once, released or not
        residues, tags = decrypt_plaintexts(cts, config, self._private_key)
        check_tags(tags, seeds, config, self._private_key)
        t3 = time.perf_counter()
        estimate = to_residues(residues, config).astype(np.float64) * config.granularity
        return Release(round_id=round_id, residues=residues, estimate=estimate, contributors=contributors,
                       noise_shares=shares, epsilon=config.epsilon(shares),
                       timings={"close": t1 - t0, "fetch": t2 - t1, "decrypt": t3 - t2})

    def _open_aggregate(self, body: bytes, round_id: str, config: RoundConfig) -> tuple[list[int], Any]:
        """Split an ``Aggregate`` v2 frame into ciphertexts and receipts.

        Raises:
            ReleaseRefusedError: the frame names another round or its sizes disagree.
            MessageError: not an Aggregate v2 frame, or ciphertexts not under this key.
        """
        frame = decode_frame(body, AGGREGATE, (FRAME_VERSION,))
        count = config.ciphertexts_per_message()
        width = ciphertext_width(int(self.public_key.n)) * count
        payload = bytes(frame.payload)
        if frame.meta.get("round_id") != round_id or frame.meta.get("receipts_bytes") != len(payload) - width:
            raise ReleaseRefusedError("the aggregate names another round or its sizes do not add up")
        cts = decode_ciphertexts(payload[:width], int(self.public_key.n), count)
        try:
            receipts = json.loads(payload[width:])
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ReleaseRefusedError(f"the aggregate's receipts are not JSON: {exc}") from None
        return cts, receipts

    def _close_and_wait(self, http: Any, round_id: str, topup_wait: float) -> None:
        """Close a collecting round, wait up to ``topup_wait`` s for top-ups, close an incomplete top-up.

        Raises:
            ReleaseRefusedError: the round ends in any state but ``ready``.
            RemoteError: the aggregator refused a request.
        """
        status = round_status(http, round_id)
        if status["state"] == RoundState.COLLECTING.value:
            status = self.close_round(http, round_id, RoundState.COLLECTING)
        deadline = time.monotonic() + topup_wait
        while status["state"] == RoundState.TOPUP.value and time.monotonic() < deadline:
            time.sleep(0.05)
            status = round_status(http, round_id)
        if status["state"] == RoundState.TOPUP.value:
            status = self.close_round(http, round_id, RoundState.TOPUP)
        if status["state"] != RoundState.READY.value:
            raise ReleaseRefusedError(f"round {status['state']}: {status['reason']}")
