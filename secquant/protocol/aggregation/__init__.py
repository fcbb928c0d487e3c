"""Paillier secure aggregation with distributed discrete Gaussian noise, every party authenticated.

Parties (``protocols/secure-aggregation.md``):

* the **key-holder** (:class:`KeyHolder`, :mod:`.keyholder`) makes the Paillier key
  pair, signs each round (round id, config, public key, party list) with its
  Ed25519 key and opens it at the aggregator, closes it by signed command, and
  decrypts only the sum, only if its own check of every party's signature finds
  enough distinct parties and noise shares;
* **parties** (clients, :class:`AggregationClient`, :mod:`.client`), each with its
  own Ed25519 key registered in the key-holder's :class:`PartyList`, verify the
  round against the pinned key-holder key and their own :class:`ClientPolicy`
  before they encrypt; then clip, scale and round their update to Z_{2^b}, add
  one N_Z(0, σ²) share (noise from :mod:`secquant.dp`, CSPRNG-keyed), encrypt and
  sign (:mod:`.encoding`);
* the **aggregator** (:func:`create_aggregator_app`, ``secquant aggregate``)
  verifies signatures, accepts one submission per party and multiplies
  ciphertexts; it holds no secret key: :mod:`.app` assembles it, :mod:`.routes`
  holds its endpoints, :mod:`.table` the signed commands, :mod:`.rounds` the
  round state machine.

:mod:`.config` is a round's public parameters and accounting (:class:`RoundConfig`),
:mod:`.credentials` the party list and signed statements, :mod:`.policy` a
client's floors, :mod:`.messages` the binary frames.

.. code-block:: python

    parties = PartyList.from_public_keys({"alice": "keys/alice.pub", ...})
    kh = KeyHolder("keys/kh.key", parties)                # 3072-bit Paillier key
    rid = kh.open_round(url, token, RoundConfig(n_clients=10, dim=1000))
    # on each party's machine, with the key-holder's public key pinned
    AggregationClient(url, token, "alice", signing_key="keys/alice.key",
                      keyholder_key="keys/kh.pub").submit(rid, update)
    release = kh.release(url, token, rid)                 # closes, tops up if needed
    release.estimate                                      # noisy sum, float

Names are imported on first use (FastAPI only with the aggregator).
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "AggregationClient": "secquant.protocol.aggregation.client",
    "ClientPolicy": "secquant.protocol.aggregation.policy",
    "EncryptionRandomness": "secquant.protocol.aggregation.policy",
    "RoundPolicyError": "secquant.protocol.aggregation.policy",
    "PartyList": "secquant.protocol.aggregation.credentials",
    "RoundAnnouncement": "secquant.protocol.aggregation.credentials",
    "KeyHolder": "secquant.protocol.aggregation.keyholder",
    "Release": "secquant.protocol.aggregation.keyholder",
    "DropoutPolicy": "secquant.protocol.aggregation.config",
    "RoundConfig": "secquant.protocol.aggregation.config",
    "AggregatorConfig": "secquant.protocol.aggregation.app",
    "create_aggregator_app": "secquant.protocol.aggregation.app",
    "RoundStatus": "secquant.protocol.aggregation.rounds",
    "released_sum_mechanism": "secquant.protocol.aggregation.encoding",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
