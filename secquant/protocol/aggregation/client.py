"""A client of secure aggregation: clip, scale, round, add one noise share, encrypt, submit.

Each client encodes its update with :func:`~secquant.protocol.aggregation.encoding.encode_updates`,
adds one share of N_Z(0, σ²) noise from :mod:`secquant.dp` (through
:func:`~secquant.protocol.aggregation.encoding.noise_shares`), and encrypts under the
round's public key; after dropouts it may be asked for extra noise shares (:meth:`AggregationClient.top_up`).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.encoding import (
    encode_ciphertexts,
    encode_updates,
    encrypt_residues,
    noise_shares,
    to_residues,
)
from secquant.protocol.aggregation.messages import SUBMISSION, RoundState, SubmissionKind
from secquant.protocol.errors import RoundStateError
from secquant.protocol.messages import Frame, encode_frame
from secquant.protocol.transport import OCTET_STREAM, http_client, raise_for_status

__all__ = ["AggregationClient", "round_status"]

log = logging.getLogger("secquant.protocol")


def round_status(http: Any, rid: str) -> dict[str, Any]:
    """``GET /v1/rounds/{rid}`` as a dict.

    Raises:
        RemoteError: the aggregator refused.
    """
    r = http.get(f"/v1/rounds/{rid}")
    raise_for_status(r)
    return dict(r.json())


class AggregationClient:
    """One client of secure aggregation.

    Args:
        url: Aggregator URL.
        token: Bearer token.
        client_id: This client's id, unique in a round (1-64 characters).
        rng: Randomness for rounding and noise (default: seeded from OS entropy).
        reveal_noise_for_testing: TEST ONLY: keep the quantized update and the
            noise in ``revealed`` so a test can check the release to the bit.
            Nothing extra is sent; the values stay in this object.
        verify: TLS verification.

    Raises:
        ConfigError: invalid client id.
    """

    def __init__(self, url: str, token: str | None, client_id: str, *, rng: np.random.Generator | None = None,
                 reveal_noise_for_testing: bool = False, verify: Any = True) -> None:
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            raise ConfigError(f"client_id must be a string of 1-64 characters, got {client_id!r}")
        self.url, self.token, self.client_id, self.verify = url, token, client_id, verify
        self.rng = rng if rng is not None else np.random.default_rng()
        self.reveal = bool(reveal_noise_for_testing)
        if self.reveal:
            log.warning("TEST MODE: client %s keeps its noise for inspection; never use in production", client_id)
        self.revealed: dict[str, NDArray[np.int64]] = {}
        self.timings: dict[str, float] = {}

    def _round(self, http: Any, rid: str) -> tuple[RoundConfig, Any, dict[str, Any]]:
        from secquant.backends.paillier.keys import load_public_key

        status = round_status(http, rid)
        config = RoundConfig.from_json(status["config"])
        key = load_public_key(base64.b64decode(status["public_key"]), allow_insecure=config.allow_insecure_key_bits)
        if key.bits != config.key_bits:
            raise ConfigError(f"the round's public key has {key.bits} bits; its config says {config.key_bits}")
        return config, key, status

    def _send(self, http: Any, rid: str, kind: SubmissionKind, values: NDArray[np.int64], config: RoundConfig,
              key: Any, shares: int | None = None) -> None:
        t0 = time.perf_counter()
        cts = encrypt_residues(to_residues(values, config), config, key)
        meta: dict[str, Any] = {"round_id": rid, "client_id": self.client_id, "kind": kind.value}
        if shares is not None:
            meta["shares"] = shares
        body = encode_frame(Frame(SUBMISSION, 1, meta, encode_ciphertexts(cts, int(key.n))))
        t1 = time.perf_counter()
        r = http.post(f"/v1/rounds/{rid}/submissions", content=body, headers=OCTET_STREAM)
        raise_for_status(r)
        self.timings[f"{kind.value}_encrypt"] = t1 - t0
        self.timings[f"{kind.value}_send"] = time.perf_counter() - t1

    def submit(self, round_id: str, update: ArrayLike) -> None:
        """Encode, add one noise share, encrypt and submit ``update`` (shape (dim,)).

        Raises:
            ConfigError: wrong shape or non-finite update.
            RemoteError: the aggregator refused (e.g. round closed, duplicate id).
        """
        with http_client(self.url, self.token, verify=self.verify) as http:
            config, key, _ = self._round(http, round_id)
            q = encode_updates(update, config, self.rng)[0]
            z = noise_shares(config, 1, self.rng)[0]
            if self.reveal:
                self.revealed["update"], self.revealed["noise"] = q, z
            self._send(http, round_id, SubmissionKind.UPDATE, q + z, config, key)

    def top_up(self, round_id: str) -> int:
        """Send this client's assigned extra noise shares, if any; returns the share count.

        Returns 0 when nothing is assigned to this client or the round is already ready.

        Raises:
            RoundStateError: the round is neither in its top-up phase nor ready.
            RemoteError: the aggregator refused.
        """
        with http_client(self.url, self.token, verify=self.verify) as http:
            config, key, status = self._round(http, round_id)
            if status["state"] == RoundState.READY.value:
                return 0  # nothing (more) is needed
            if status["state"] != RoundState.TOPUP.value:
                raise RoundStateError(f"round is {status['state']}, not in its top-up phase")
            shares = int(status["topup_assignments"].get(self.client_id, 0))
            if shares == 0 or self.client_id in status["topups_received"]:
                return 0
            z = noise_shares(config, shares, self.rng)[0]
            if self.reveal:
                self.revealed["topup"] = z
            self._send(http, round_id, SubmissionKind.TOPUP, z, config, key, shares=shares)
            return shares
