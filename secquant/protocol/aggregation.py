"""Paillier secure aggregation with distributed discrete Gaussian noise.

Parties (``protocols/secure-aggregation.md``):

* the **key-holder** (:class:`KeyHolder`) makes the Paillier key pair, opens a
  round at the aggregator with the public key, and decrypts only the sum, and
  only if it carries the noise the accounting needs;
* **clients** (:class:`AggregationClient`) clip, scale and round their update to
  Z_{2^b}, add one N_Z(0, σ²) share, pack and encrypt under the public key;
* the **aggregator** (:mod:`secquant.protocol.aggregation_server`, ``secquant
  aggregate``) multiplies ciphertexts; it holds no key.

.. code-block:: python

    kh = KeyHolder()                                      # 3072-bit key
    rid = kh.open_round(url, token, RoundConfig(n_clients=10, dim=1000))
    for cid, update in updates.items():                   # on each client machine
        AggregationClient(url, token, cid).submit(rid, update)
    release = kh.release(url, token, rid)                 # closes, tops up if needed
    release.estimate                                      # noisy sum, float
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError
from secquant.protocol.aggregation_config import DropoutPolicy, RoundConfig
from secquant.protocol.aggregation_encoding import (
    decode_ciphertexts,
    decrypt_sum,
    encode_ciphertexts,
    encode_updates,
    encrypt_residues,
    noise_shares,
    to_residues,
)
from secquant.protocol.aggregation_messages import AGGREGATE, SUBMISSION
from secquant.protocol.client import raise_for_status
from secquant.protocol.errors import ReleaseRefusedError, RoundStateError
from secquant.protocol.messages import Frame, decode_frame, encode_frame

__all__ = ["AggregationClient", "DropoutPolicy", "KeyHolder", "Release", "RoundConfig"]

log = logging.getLogger("secquant.protocol")
_OCTET = {"Content-Type": "application/octet-stream"}


def _http(url: str, token: str | None, verify: Any = True, timeout: float = 300.0) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, verify=verify, timeout=timeout)


def _status(http: Any, rid: str) -> dict[str, Any]:
    r = http.get(f"/v1/rounds/{rid}")
    raise_for_status(r)
    return dict(r.json())


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
        from secquant.backends.paillier_keys import generate_keypair

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
        with _http(url, token, verify) as http:
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
        with _http(url, token, verify) as http:
            status = _status(http, round_id)
            if status["state"] == "collecting":
                r = http.post(f"/v1/rounds/{round_id}/close")
                raise_for_status(r)
                status = r.json()
            deadline = time.monotonic() + topup_wait
            while status["state"] == "topup" and time.monotonic() < deadline:
                time.sleep(0.05)
                status = _status(http, round_id)
            if status["state"] == "topup":
                r = http.post(f"/v1/rounds/{round_id}/close")
                raise_for_status(r)
                status = r.json()
            if status["state"] != "ready":
                raise ReleaseRefusedError(f"round {status['state']}: {status['reason']}")
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
        from secquant.backends.paillier_keys import load_public_key

        status = _status(http, rid)
        config = RoundConfig.from_json(status["config"])
        key = load_public_key(base64.b64decode(status["public_key"]), allow_insecure=config.allow_insecure_key_bits)
        if key.bits != config.key_bits:
            raise ConfigError(f"the round's public key has {key.bits} bits; its config says {config.key_bits}")
        return config, key, status

    def _send(self, http: Any, rid: str, kind: str, values: NDArray[np.int64], config: RoundConfig,
              key: Any, shares: int | None = None) -> None:
        t0 = time.perf_counter()
        cts = encrypt_residues(to_residues(values, config), config, key)
        meta: dict[str, Any] = {"round_id": rid, "client_id": self.client_id, "kind": kind}
        if shares is not None:
            meta["shares"] = shares
        body = encode_frame(Frame(SUBMISSION, 1, meta, encode_ciphertexts(cts, int(key.n))))
        t1 = time.perf_counter()
        r = http.post(f"/v1/rounds/{rid}/submissions", content=body, headers=_OCTET)
        raise_for_status(r)
        self.timings[f"{kind}_encrypt"] = t1 - t0
        self.timings[f"{kind}_send"] = time.perf_counter() - t1

    def submit(self, round_id: str, update: ArrayLike) -> None:
        """Encode, add one noise share, encrypt and submit ``update`` (shape (dim,)).

        Raises:
            ConfigError: wrong shape or non-finite update.
            RemoteError: the aggregator refused (e.g. round closed, duplicate id).
        """
        with _http(self.url, self.token, self.verify) as http:
            config, key, _ = self._round(http, round_id)
            q = encode_updates(update, config, self.rng)[0]
            z = noise_shares(config, 1, self.rng)[0]
            if self.reveal:
                self.revealed["update"], self.revealed["noise"] = q, z
            self._send(http, round_id, "update", q + z, config, key)

    def top_up(self, round_id: str) -> int:
        """Send this client's assigned extra noise shares, if any; returns the share count.

        Returns 0 when nothing is assigned to this client or the round is already ready.

        Raises:
            RoundStateError: the round is neither in its top-up phase nor ready.
            RemoteError: the aggregator refused.
        """
        with _http(self.url, self.token, self.verify) as http:
            config, key, status = self._round(http, round_id)
            if status["state"] == "ready":
                return 0  # nothing (more) is needed
            if status["state"] != "topup":
                raise RoundStateError(f"round is {status['state']}, not in its top-up phase")
            shares = int(status["topup_assignments"].get(self.client_id, 0))
            if shares == 0 or self.client_id in status["topups_received"]:
                return 0
            z = noise_shares(config, shares, self.rng)[0]
            if self.reveal:
                self.revealed["topup"] = z
            self._send(http, round_id, "topup", z, config, key, shares=shares)
            return shares
