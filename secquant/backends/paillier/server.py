"""The Paillier server role: affine blocks on ciphertexts, with the public key only.

Each output ``y_k = sum_i W_ki x_i + b_k`` is one signed multi-exponentiation
(Pippenger buckets) times a plaintext bias factor; the outputs of the whole
batch are packed into as few ciphertexts as the slot layout allows
(:mod:`~secquant.backends.paillier.packing`).

Re-randomization uses the server's own randomness: each packed ciphertext is
multiplied by ``r**n mod n**2`` for a fresh uniform ``r`` from :mod:`secrets`.
``r**n`` is a uniform element of the group of n-th residues, so the product
is a uniform encryption of the same plaintext whatever randomness the request
carried.  The client's DJN element ``hs`` is never used here: a client that
sent ``hs = 1`` (or any element of small order) would otherwise cancel the
re-randomization (``hs**a = 1``) and receive byte-identical answers to a
replayed request, whose randomness is a function of the weights.
Request ciphertexts must be units mod n (a non-unit would let the key owner
read exponents from the p- or q-part), which one gcd of their product checks.

Under a noisy release policy the server adds discrete Gaussian noise (drawn
from the dp sampler on :func:`~secquant.dp.samplers.secure_generator`, keyed
from :mod:`secrets` per request) to every output of the last round before
packing; the last round's slots are sized for it.
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
from secquant.backends.paillier.keys import PaillierPublicKey, require_gmpy2
from secquant.backends.paillier.packing import PackingLayout
from secquant.backends.paillier.plan import PaillierPlan
from secquant.backends.paillier.wire import REQUEST_TYPE, RESPONSE_TYPE, decode, encode
from secquant.backends.release import draw_noise, noise_bound
from secquant.errors import ConfigError

__all__ = ["PaillierServer"]


class PaillierServer(ServerRole):
    """Evaluates affine blocks on ciphertexts with the public key only.

    Args:
        plan: The rounds.
        layouts: Slot packing of each round's response.
        public: The client's public key.
        release: Release policy of the final outputs (None: full logits).
    """

    def __init__(self, plan: PaillierPlan, layouts: tuple[PackingLayout, ...], public: PaillierPublicKey,
                 release: Any = None) -> None:
        self._plan = plan
        self._layouts = layouts
        self.public = public
        self._release = release
        self._noise_bound = noise_bound(release) if release is not None else 0
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
            ConfigError: malformed payload, another key, unknown round, a
                ciphertext count that does not match the model, or a
                ciphertext that is not a unit mod n.
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
        self._check_units(msg.ciphertexts)
        n2 = self.public.nsquare
        outputs: list[Any] = []
        d = block.in_features
        for s in range(msg.batch):
            cts = msg.ciphertexts[s * d : (s + 1) * d]
            for idx, exps, bias_factor in self._rows[msg.round]:
                y = multi_pow([cts[i] for i in idx], exps, n2)
                outputs.append(y * bias_factor % n2)
        if msg.round == plan.rounds - 1 and self._noise_bound:
            outputs = self._add_noise(outputs)
        layout = self._layouts[msg.round]
        packed = []
        for chunk in layout.chunks(outputs):
            c = pack_ciphertexts(list(chunk), layout.slot_bits, n2)
            packed.append(c * fresh_randomizer(self.public, Randomness.FULL) % n2)
        meta = {"round": msg.round, "batch": msg.batch, "features": block.out_features,
                "slot_bits": layout.slot_bits, "slots": layout.slots}
        return encode(RESPONSE_TYPE, self.public, meta, packed)

    def _check_units(self, ciphertexts: list[Any]) -> None:
        """Refuse a request holding a ciphertext that shares a factor with n.

        Raises:
            ConfigError: some ciphertext is not a unit mod n**2.
        """
        g2 = require_gmpy2()
        n = self.public.n
        product = g2.mpz(1)
        for c in ciphertexts:
            product = product * c % n
        if g2.gcd(product, n) != 1:
            raise ConfigError("a request ciphertext is not a unit mod n (it shares a factor with n); refusing it")

    def _add_noise(self, outputs: list[Any]) -> list[Any]:
        """Multiply each encrypted output by ``(1 + n)**noise``: y_k + noise_k, noise fresh per output."""
        n, n2 = self.public.n, self.public.nsquare
        noise = draw_noise(self._release, len(outputs))
        return [y * ((1 + n * (int(e) % n)) % n2) % n2 for y, e in zip(outputs, noise)]
