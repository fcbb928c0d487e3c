"""A client (party) of secure aggregation: verify the round, clip, scale, round, add noise, encrypt, sign, submit.

Before it encrypts anything, a client checks the round with
:func:`~secquant.protocol.aggregation.policy.verify_round`: the announcement is
signed by the key-holder key the client pinned, lists this party with its own
key, and meets the client's own :class:`~secquant.protocol.aggregation.policy.ClientPolicy`.
It then encodes its update with
:func:`~secquant.protocol.aggregation.encoding.encode_updates`, adds one share of
N_Z(0, σ²) noise from :mod:`secquant.dp` drawn with a fresh
:func:`secquant.dp.samplers.secure_generator` (keyed from :mod:`secrets`, never
from anything received), encrypts under the round's public key and signs the
submission with its Ed25519 key.  After dropouts it may be asked for extra noise
shares (:meth:`AggregationClient.top_up`).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.dp.samplers import secure_generator
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.credentials import (
    SUBMISSION_CONTEXT,
    check_party_id,
    raw_public_key,
    submission_statement,
)
from secquant.protocol.aggregation.encoding import (
    TAG_SEED_BYTES,
    encode_ciphertexts,
    encode_updates,
    encrypt_residues,
    encrypt_seed,
    message_tags,
    noise_shares,
    to_residues,
)
from secquant.protocol.aggregation.messages import FRAME_VERSION, SUBMISSION, RoundState, SubmissionKind
from secquant.protocol.aggregation.policy import ClientPolicy, EncryptionRandomness, VerifiedRound, verify_round
from secquant.protocol.errors import RoundStateError
from secquant.protocol.messages import Frame, encode_frame, sha256_hex
from secquant.protocol.transport import OCTET_STREAM, http_client, raise_for_status

__all__ = ["AggregationClient", "build_submission", "round_status"]

log = logging.getLogger("secquant.protocol")


def build_submission(round_id: str, party_id: str, signing_key: Any, kind: SubmissionKind, shares: int,
                     values: NDArray[np.int64], config: RoundConfig, public_key: Any, *,
                     own_randomness: bool = True) -> bytes:
    """A signed ``Submission`` v2 frame of integer ``values`` (update plus noise, or noise alone).

    Draws a fresh tag seed from :mod:`secrets`, encrypts the values with their
    integrity tags and the seed, and signs the statement
    (:func:`~secquant.protocol.aggregation.credentials.submission_statement`).

    Args:
        round_id: The round.
        party_id: The signer's party id.
        signing_key: The party's Ed25519 private key (object, PEM or path).
        kind: Update or top-up.
        shares: 1 for an update; the assigned share count for a top-up.
        values: Integers to encrypt, shape (dim,).
        config: The round.
        public_key: The round's Paillier public key.
        own_randomness: ``r^n`` (True) or DJN ``hs^a`` randomness.
    """
    from secquant.signing import sign_bytes

    seed = secrets.token_bytes(TAG_SEED_BYTES)
    cts = encrypt_residues(to_residues(values, config), config, public_key, tags=message_tags(seed, config),
                           own_randomness=own_randomness)
    n = int(public_key.n)
    data = encode_ciphertexts(cts, n)
    tag = encode_ciphertexts([encrypt_seed(seed, public_key, own_randomness=own_randomness)], n)
    statement = submission_statement(round_id, party_id, kind.value, shares, sha256_hex(data), sha256_hex(tag))
    signature = sign_bytes(statement, signing_key, context=SUBMISSION_CONTEXT).to_json()
    meta = {"round_id": round_id, "party_id": party_id, "kind": kind.value, "shares": shares, "signature": signature}
    return encode_frame(Frame(SUBMISSION, FRAME_VERSION, meta, data + tag))


def round_status(http: Any, rid: str) -> dict[str, Any]:
    """``GET /v1/rounds/{rid}`` as a dict.

    Raises:
        RemoteError: the aggregator refused.
    """
    r = http.get(f"/v1/rounds/{rid}")
    raise_for_status(r)
    return dict(r.json())


class AggregationClient:
    """One party of secure aggregation.

    Args:
        url: Aggregator URL (https, or http on loopback; see ``policy``).
        token: The aggregator's bearer token (a network gate), or None.
        party_id: This party's id, as registered with the key-holder.
        signing_key: This party's Ed25519 private key (a ``.key`` file of mode 0600
            from ``secquant keys new``, PEM bytes, or a key object).
        keyholder_key: The key-holder's Ed25519 public key(s), pinned: only rounds it
            signed are joined.
        policy: This client's floors (default :class:`ClientPolicy`: 3072-bit keys,
            own encryption randomness, https off loopback).
        reveal_noise_for_testing: TEST ONLY: keep the quantized update and the
            noise in ``revealed`` so a test can check the release to the bit.
            Nothing extra is sent; the values stay in this object.
        verify: TLS verification (True, an SSL context, or a CA bundle path).

    Raises:
        ConfigError: invalid party id or keys.
        RoundPolicyError: the transport is below ``policy``.
    """

    def __init__(self, url: str, token: str | None, party_id: str, *, signing_key: Any, keyholder_key: Any,
                 policy: ClientPolicy | None = None, reveal_noise_for_testing: bool = False,
                 verify: Any = True) -> None:
        from secquant.signing import load_private_key, trusted_keys

        self.policy = policy if policy is not None else ClientPolicy()
        self.policy.check_transport(url, verify)
        self.url, self.token, self.client_id, self.verify = url, token, check_party_id(party_id), verify
        self._signing_key = load_private_key(signing_key)
        self._own_key = raw_public_key(self._signing_key)
        self._keyholder = trusted_keys(keyholder_key)
        self.reveal = bool(reveal_noise_for_testing)
        if self.reveal:
            log.warning("TEST MODE: party %s keeps its noise for inspection; never use in production", party_id)
        self.revealed: dict[str, NDArray[np.int64]] = {}
        self.timings: dict[str, float] = {}

    @property
    def party_id(self) -> str:
        """This party's id."""
        return self.client_id

    def check_round(self, round_id: str) -> VerifiedRound:
        """Fetch and verify a round without submitting (see :func:`verify_round`).

        Raises:
            AuthenticationError, RoundPolicyError: as :func:`verify_round`.
            RemoteError: the aggregator refused.
        """
        with http_client(self.url, self.token, verify=self.verify) as http:
            return self._round(http, round_id)

    def _round(self, http: Any, rid: str) -> VerifiedRound:
        return verify_round(round_status(http, rid), rid, self._keyholder, self.client_id, self._own_key, self.policy)

    def _send(self, http: Any, rnd: VerifiedRound, kind: SubmissionKind, values: NDArray[np.int64],
              shares: int) -> None:
        rid = rnd.announcement.round_id
        t0 = time.perf_counter()
        body = build_submission(rid, self.client_id, self._signing_key, kind, shares, values, rnd.config,
                                rnd.public_key, own_randomness=self.policy.randomness is EncryptionRandomness.OWN)
        t1 = time.perf_counter()
        r = http.post(f"/v1/rounds/{rid}/submissions", content=body, headers=OCTET_STREAM)
        raise_for_status(r)
        self.timings[f"{kind.value}_encrypt"] = t1 - t0
        self.timings[f"{kind.value}_send"] = time.perf_counter() - t1

    def submit(self, round_id: str, update: ArrayLike) -> None:
        """Verify the round, encode, add one noise share, encrypt, sign and submit ``update`` (shape (dim,)).

        Raises:
            AuthenticationError: the round is not signed by the pinned key-holder, or does not list this party.
            RoundPolicyError: the round is below this client's floor.
            ConfigError: wrong shape or non-finite update.
            RemoteError: the aggregator refused (e.g. round closed, a second submission: 409).
        """
        with http_client(self.url, self.token, verify=self.verify) as http:
            rnd = self._round(http, round_id)
            rng = secure_generator()
            q = encode_updates(update, rnd.config, rng)[0]
            z = noise_shares(rnd.config, 1, rng)[0]
            if self.reveal:
                self.revealed["update"], self.revealed["noise"] = q, z
            self._send(http, rnd, SubmissionKind.UPDATE, q + z, 1)

    def top_up(self, round_id: str) -> int:
        """Send this party's assigned extra noise shares, if any; returns the share count.

        Returns 0 when nothing is assigned to this party or the round is already ready.

        Raises:
            RoundStateError: the round is neither in its top-up phase nor ready.
            AuthenticationError, RoundPolicyError: as :meth:`submit`.
            RemoteError: the aggregator refused.
        """
        with http_client(self.url, self.token, verify=self.verify) as http:
            rnd = self._round(http, round_id)
            state = rnd.status.get("state")
            if state == RoundState.READY.value:
                return 0  # nothing (more) is needed
            if state != RoundState.TOPUP.value:
                raise RoundStateError(f"round is {state}, not in its top-up phase")
            shares = int(rnd.status.get("topup_assignments", {}).get(self.client_id, 0))
            if shares <= 0 or self.client_id in rnd.status.get("topups_received", []):
                return 0
            if shares > rnd.config.required_shares:
                raise RoundStateError(f"the aggregator assigned {shares} top-up shares; a round never needs more "
                                      f"than {rnd.config.required_shares}")
            z = noise_shares(rnd.config, shares, secure_generator())[0]
            if self.reveal:
                self.revealed["topup"] = z
            self._send(http, rnd, SubmissionKind.TOPUP, z, shares)
            return shares
