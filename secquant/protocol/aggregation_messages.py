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
:mod:`secquant.protocol.aggregation_server` and ``protocols/secure-aggregation.md``.
"""

from __future__ import annotations

__all__ = ["AGGREGATE", "SUBMISSION"]

SUBMISSION = "secquant.aggregation.Submission"
AGGREGATE = "secquant.aggregation.Aggregate"
