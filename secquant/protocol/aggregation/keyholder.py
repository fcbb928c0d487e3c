"""The key-holder of secure aggregation: makes the Paillier key pair and decrypts only noisy-enough sums.

The key-holder opens a round at the aggregator with its public key
(:meth:`KeyHolder.open_round`), and decrypts only the sum, only once, and only
if it carries the noise shares the accounting needs (:meth:`KeyHolder.release`).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.protocol.aggregation.client import round_status
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.encoding import decode_ciphertexts, decrypt_sum, to_residues
from secquant.protocol.aggregation.messages import AGGREGATE, RoundState
from secquant.protocol.errors import ReleaseRefusedError
from secquant.protocol.messages import decode_frame
from secquant.protocol.transport import http_client, raise_for_status

__all__ = ["KeyHolder", "Release"]


@dataclass
class Release:
    """What the key-holder releases.

    Attributes:
        round_id: The round.
        residues: The noisy sum mod 2^b, int64 in ``[0, 2^b)``, shape (dim,).
        estimate: The noisy sum in update units: centered residues times γ.
        contributors: Clients whose updates are in the sum.
        noise_shares: N_Z(0, σ²) shares in the sum (>= ``min_noise_shares``).
        epsilon: ε at the round's δ (KLS Prop. 14 via dp-accounting).
        timings: Seconds spent: ``close``, ``fetch``, ``decrypt``.
    """

    round_id: str
    residues: NDArray[np.int64]
    estimate: NDArray[np.float64]
    contributors: list[str]
    noise_shares: int
    epsilon: float
    timings: dict[str, float] = field(default_factory=dict)


class KeyHolder:
    """Holds the Paillier secret key; decrypts only sums that carry enough noise.

    Args:
        key_bits: Paillier modulus bits (>= 2048 unless ``allow_insecure_key_bits``).
        allow_insecure_key_bits: Explicit, logged opt-out for small test keys.

    Raises:
        ConfigError: ``key_bits`` is too small.
    """

    def __init__(self, key_bits: int = 3072, *, allow_insecure_key_bits: bool = False) -> None:
        from secquant.backends.paillier.keys import generate_keypair

        low = 512 if allow_insecure_key_bits else 2048
        if isinstance(key_bits, bool) or not isinstance(key_bits, int) or not low <= key_bits <= 8192:
            raise ConfigError(f"key_bits must be an int in [{low}, 8192], got {key_bits!r}")
        self._private_key = generate_keypair(key_bits, allow_insecure=allow_insecure_key_bits)
        self.public_key = self._private_key.public
        self.key_bits = int(self.public_key.bits)
        self._configs: dict[str, RoundConfig] = {}
        self._released: set[str] = set()

    def open_round(self, url: str, token: str | None, config: RoundConfig, *, verify: Any = True) -> str:
        """Open a round at the aggregator with this public key; returns the round id.

        Raises:
            ConfigError: ``config.key_bits`` differs from this key.
            RemoteError: the aggregator refused.
        """
        if config.key_bits != self.key_bits:
            raise ConfigError(f"config.key_bits={config.key_bits} but this key has {self.key_bits} bits")
        with http_client(url, token, verify=verify) as http:
            material = base64.b64encode(self.public_key.to_bytes()).decode()
            r = http.post("/v1/rounds", json={"config": config.to_json(), "public_key": material})
            raise_for_status(r)
            rid = str(r.json()["round_id"])
        self._configs[rid] = config
        return rid

    def release(self, url: str, token: str | None, round_id: str, *, topup_wait: float = 60.0,
                verify: Any = True) -> Release:
        """Close the round, wait for any top-up, check the noise and decrypt the sum (once per round).

        Args:
            url: Aggregator URL.
            token: Bearer token.
            round_id: From :meth:`open_round`.
            topup_wait: Seconds to wait for survivors' top-ups (>= 0) before closing the top-up phase.
            verify: TLS verification.

        Raises:
            ReleaseRefusedError: the sum carries fewer noise shares than required, the
                round was refused, or it was already released.
            RemoteError: the aggregator refused a request.
        """
        if round_id in self._released:
            raise ReleaseRefusedError("this round was already released; each round is decrypted once")
        config = self._configs.get(round_id)
        if config is None:
            raise ConfigError("unknown round: open it with this key-holder first")
        t0 = time.perf_counter()
        with http_client(url, token, verify=verify) as http:
            _close_and_wait(http, round_id, topup_wait)
            t1 = time.perf_counter()
            r = http.get(f"/v1/rounds/{round_id}/aggregate")
            raise_for_status(r)
        t2 = time.perf_counter()
        frame = decode_frame(r.content, AGGREGATE)
        shares = int(frame.meta.get("noise_shares", 0))
        if shares < config.required_shares:
            raise ReleaseRefusedError(f"the sum carries {shares} noise shares; the accounting needs "
                                      f"{config.min_noise_shares}")
        cts = decode_ciphertexts(bytes(frame.payload), int(self.public_key.n), config.ciphertexts_per_message())
        self._released.add(round_id)
        residues = decrypt_sum(cts, config, self._private_key)
        t3 = time.perf_counter()
        estimate = to_residues(residues, config).astype(np.float64) * config.granularity
        return Release(round_id=round_id, residues=residues, estimate=estimate,
                       contributors=list(frame.meta.get("contributors", [])), noise_shares=shares,
                       epsilon=config.epsilon(shares), timings={"close": t1 - t0, "fetch": t2 - t1, "decrypt": t3 - t2})


def _close_and_wait(http: Any, round_id: str, topup_wait: float) -> None:
    """Close a collecting round, wait up to ``topup_wait`` s for top-ups, close an incomplete top-up.

    Raises:
        ReleaseRefusedError: the round ends in any state but ``ready``.
        RemoteError: the aggregator refused a request.
    """
    status = round_status(http, round_id)
    if status["state"] == RoundState.COLLECTING.value:
        r = http.post(f"/v1/rounds/{round_id}/close")
        raise_for_status(r)
        status = r.json()
    deadline = time.monotonic() + topup_wait
    while status["state"] == RoundState.TOPUP.value and time.monotonic() < deadline:
        time.sleep(0.05)
        status = round_status(http, round_id)
    if status["state"] == RoundState.TOPUP.value:
        r = http.post(f"/v1/rounds/{round_id}/close")
        raise_for_status(r)
        status = r.json()
    if status["state"] != RoundState.READY.value:
        raise ReleaseRefusedError(f"round {status['state']}: {status['reason']}")
