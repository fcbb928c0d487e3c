"""Binary messages of secure aggregation (frames as in :mod:`secquant.protocol.messages`).

* ``Submission`` v1 — client → aggregator, ``POST /v1/rounds/{id}/submissions``.
  meta: ``round_id`` (str), ``client_id`` (str), ``kind`` (``"update"`` or
  ``"topup"``), ``shares`` (int, top-ups only: whole N_Z(0, σ²) shares summed in);
  payload: ``ciphertexts_per_message`` Paillier ciphertexts, each a
  fixed-width big-endian integer of ``ceil(bits(n²)/8)`` bytes, encrypting
  packed centered residues mod 2^b (``PackingLayout`` with
  ``max_summands = 2·n_clients``).
* ``Aggregate`` v1 — aggregator → key-holder, ``GET /v1/rounds/{id}/aggregate``.
  meta: ``round_id``, ``contributors`` (list of client ids), ``noise_shares``
  (int), ``topups`` (ids), ``ciphertexts`` (int); payload: the summed
  ciphertexts, same encoding.

JSON bodies (round open and status) are documented in
:mod:`secquant.protocol.aggregation.rounds` and ``protocols/secure-aggregation.md``;
a round's ``state`` is a :class:`RoundState` value, a submission's ``kind`` a
:class:`SubmissionKind` value.
"""

from __future__ import annotations

import enum

__all__ = ["AGGREGATE", "SUBMISSION", "RoundState", "SubmissionKind"]

SUBMISSION = "secquant.aggregation.Submission"
AGGREGATE = "secquant.aggregation.Aggregate"


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
