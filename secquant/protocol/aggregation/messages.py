"""Binary messages of secure aggregation (frames as in :mod:`secquant.protocol.messages`).

* ``Submission`` v2 — party → aggregator, ``POST /v1/rounds/{id}/submissions``.
  meta: ``round_id`` (str), ``party_id`` (str), ``kind`` (``"update"`` or
  ``"topup"``), ``shares`` (int: 1 for an update, the whole N_Z(0, σ²) shares
  summed in for a top-up), ``signature`` (a :class:`secquant.signing.Signature`
  record by the party's Ed25519 key over
  :func:`~secquant.protocol.aggregation.credentials.submission_statement`, which
  binds the round, the party, the kind, the shares and the SHA-256 of the data
  ciphertexts and of the tag ciphertext);
  payload: ``ciphertexts_per_message`` Paillier ciphertexts, each a
  fixed-width big-endian integer of ``ceil(bits(n²)/8)`` bytes, encrypting
  packed centered residues mod 2^b (``PackingLayout`` with
  ``max_summands = 2·n_clients``; the last slot of each plaintext is an
  integrity tag), then one more ciphertext of the same width: the message's
  128-bit tag seed (:mod:`secquant.protocol.aggregation.encoding`).
* ``Aggregate`` v2 — aggregator → key-holder, ``GET /v1/rounds/{id}/aggregate``.
  meta: ``round_id``, ``contributors`` (party ids), ``noise_shares`` (int, the
  aggregator's count; the key-holder recounts), ``topups`` (ids), ``ciphertexts``
  (int), ``receipts_bytes`` (int); payload: the summed ciphertexts (same
  encoding), then ``receipts_bytes`` bytes of canonical JSON: the list of every
  summed submission's receipt (``party_id``, ``kind``, ``shares``,
  ``ciphertexts_sha256``, ``tag_ciphertext`` (base64), ``signature``), which the
  key-holder verifies again; it then checks the sum's tags against the seeds.

Version 1 (unsigned, self-declared ``client_id``) is refused.  JSON bodies
(round open, status, close) are documented in
:mod:`secquant.protocol.aggregation.rounds` and ``protocols/secure-aggregation.md``;
a round's ``state`` is a :class:`RoundState` value, a submission's ``kind`` a
:class:`SubmissionKind` value.
"""

from __future__ import annotations

import enum

__all__ = ["AGGREGATE", "FRAME_VERSION", "SUBMISSION", "RoundState", "SubmissionKind"]

SUBMISSION = "secquant.aggregation.Submission"
AGGREGATE = "secquant.aggregation.Aggregate"
#: Version of both frames (v1 had no signatures and is refused).
FRAME_VERSION = 2


class RoundState(enum.Enum):
    """Where a round is (the ``state`` of a round status)."""

    COLLECTING = "collecting"  #: accepting updates
    TOPUP = "topup"  #: waiting for the survivors' extra noise shares
    READY = "ready"  #: the sum carries enough noise; the key-holder may fetch it
    REFUSED = "refused"  #: never released


class SubmissionKind(enum.Enum):
    """What a ``Submission`` frame carries (its ``kind``)."""

    UPDATE = "update"  #: a client's encrypted update plus one noise share
    TOPUP = "topup"  #: extra noise shares assigned after dropouts
