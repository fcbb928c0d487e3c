"""Paillier secure aggregation with distributed discrete Gaussian noise.

Parties (``protocols/secure-aggregation.md``):

* the **key-holder** (:class:`KeyHolder`, :mod:`.keyholder`) makes the Paillier key
  pair, opens a round at the aggregator with the public key, and decrypts only
  the sum, and only if it carries the noise the accounting needs;
* **clients** (:class:`AggregationClient`, :mod:`.client`) clip, scale and round
  their update to Z_{2^b}, add one N_Z(0, σ²) share (noise from :mod:`secquant.dp`),
  pack and encrypt under the public key (:mod:`.encoding`);
* the **aggregator** (:func:`create_aggregator_app`, ``secquant aggregate``)
  multiplies ciphertexts and holds no key: :mod:`.app` assembles it,
  :mod:`.routes` holds its endpoints, :mod:`.rounds` the round state machine.

:mod:`.config` is a round's public parameters and accounting (:class:`RoundConfig`),
:mod:`.messages` the binary frames.

.. code-block:: python

    kh = KeyHolder()                                      # 3072-bit key
    rid = kh.open_round(url, token, RoundConfig(n_clients=10, dim=1000))
    for cid, update in updates.items():                   # on each client machine
        AggregationClient(url, token, cid).submit(rid, update)
    release = kh.release(url, token, rid)                 # closes, tops up if needed
    release.estimate                                      # noisy sum, float

Names are imported on first use (FastAPI only with the aggregator).
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "AggregationClient": "secquant.protocol.aggregation.client",
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
