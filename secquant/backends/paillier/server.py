"""The Paillier server role: affine blocks on ciphertexts, with the public key only.

Each output ``y_k = sum_i W_ki x_i + b_k`` is one signed multi-exponentiation
(Pippenger buckets) times a plaintext bias factor; the outputs of the whole
batch are packed into as few ciphertexts as the slot layout allows
(:mod:`~secquant.backends.paillier.packing`), and each packed ciphertext is
re-randomized with a fresh ``hs**a`` (or ``r**n``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secquant.backends.base import ServerRole
from secquant.backends.paillier.crypto import (
    Randomness,
    fresh_randomizer,
    multi_pow,
    pack_ciphertexts,
)
from secquant.backends.paillier.keys import PaillierPublicKey
from secquant.backends.paillier.packing import PackingLayout
from secquant.backends.paillier.plan import PaillierPlan
from secquant.backends.paillier.wire import REQUEST_TYPE, RESPONSE_TYPE, decode, encode
from secquant.errors import ConfigError

__all__ = ["PaillierServer"]


class PaillierServer(ServerRole):
    """Evaluates affine blocks on ciphertexts with the public key only."""

    def __init__(self, plan: PaillierPlan, layouts: tuple[PackingLayout, ...], randomness: Randomness,
                 public: PaillierPublicKey) -> None:
        self._plan = plan
        self._layouts = layouts
        self._randomness = randomness
        self.public = public
        n, n2 = public.n, public.nsquare
        self._rows: list[list[tuple[list[int], list[int], Any]]] = []
        for block in plan.blocks:
            w = np.asarray(block.weight)
            rows = []
            for k in range(block.out_features):
                idx = [int(i) for i in np.flatnonzero(w[k])]
                exps = [int(w[k, i]) for i in idx]
                bias_factor = (1 + n * (int(block.bias[k]) % n)) % n2
                rows.append((idx, exps, bias_factor))
            self._rows.append(rows)

    def evaluate(self, payload: bytes) -> bytes:
        """Map a round's request to its packed, re-randomized response.

        Raises:
            ConfigError: malformed payload, another key, unknown round, or a
                ciphertext count that does not match the model.
        """
        plan = self._plan
        msg = decode(payload, REQUEST_TYPE, self.public)
        if msg.round >= plan.rounds:
            raise ConfigError(f"request for round {msg.round}, but the model has {plan.rounds} round(s)")
        block = plan.blocks[msg.round]
        if msg.features != block.in_features or len(msg.ciphertexts) != msg.batch * block.in_features:
            raise ConfigError(
                f"round {msg.round} takes {block.in_features} ciphertexts per input; got {len(msg.ciphertexts)} "
                f"for a batch of {msg.batch}"
            )
        n2 = self.public.nsquare
        outputs: list[Any] = []
        d = block.in_features
        for s in range(msg.batch):
            cts = msg.ciphertexts[s * d : (s + 1) * d]
            for idx, exps, bias_factor in self._rows[msg.round]:
                y = multi_pow([cts[i] for i in idx], exps, n2)
                outputs.append(y * bias_factor % n2)
        layout = self._layouts[msg.round]
        packed = []
        for chunk in layout.chunks(outputs):
            c = pack_ciphertexts(list(chunk), layout.slot_bits, n2)
            packed.append(c * fresh_randomizer(self.public, self._randomness) % n2)
        meta = {"round": msg.round, "batch": msg.batch, "features": block.out_features,
                "slot_bits": layout.slot_bits, "slots": layout.slots}
        return encode(RESPONSE_TYPE, self.public, meta, packed)
