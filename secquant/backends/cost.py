"""The cost model of ``mode="auto"``: predicted seconds of one call, from the planners' operation counts.

BFV and CKKS each have two slot layouts.  LATENCY puts one input in a
ciphertext (BFV: two without a gathered first stage) and sums with rotations;
THROUGHPUT puts one *feature* of up to N (CKKS: N/2) inputs in a ciphertext and
needs no rotation, but every call pays for whole batches of slots.  Which is
faster depends on the model and on how many inputs a call brings, so
:class:`~secquant.backends.compile.EncryptedModel` asks this model on every
call (see :mod:`~secquant.backends.automode`).

A call of n inputs costs ``ceil(n / batch)`` batches.  A batch costs, per
plaintext modulus (BFV runs the circuit once per CRT prime), the sum of its
SEAL operations (:class:`OpCounts`, counted by each scheme's planner:
:func:`secquant.backends.bfv.cost.op_counts`, :func:`secquant.backends.ckks.cost.op_counts`),
each priced at the ring degree N and the top level's L data primes
(one thread, milliseconds, u = N/8192)::

    plaintext product (or integer-map term)   0.08 · L · u
    addition                                  0.025 · L · u
    rescale (CKKS)                            0.3 · L · u
    key switch (rotation, or a product        0.9 · L · u
      with relinearization)
    encryption (secret key)                   (0.45 · L + 0.5) · u
    decryption                                0.06 · L · u
    ciphertext on the wire (serialize, load)  1.0 · L · u

Fitted to medians of the single operations measured on the project's 2-core
machine at N = 4096 to 16384 and L = 1 to 8 (the subset in
``shared/notes/he-measurements.md`` agrees within 2x), then checked against
whole calls of the digits MLP (8 inputs, each scheme and layout: predictions
within 1.5x of the measured seconds).  Pricing every operation at the top
level overestimates deep circuits alike in both modes; only the ratio between
the modes decides.  The network is left out (a remote client adds the request
and response bytes over its link, which favour LATENCY further for few inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from secquant.errors import ConfigError

__all__ = ["OpCounts", "predict_seconds"]

#: Milliseconds per operation, per data prime, at N = 8192 (see the module docstring).
MS_PLAIN = 0.08
MS_ADD = 0.025
MS_RESCALE = 0.3
MS_KEY_SWITCH = 0.9
MS_ENCRYPT = 0.45
MS_ENCRYPT_FIXED = 0.5
MS_DECRYPT = 0.06
MS_WIRE = 1.0


@dataclass(frozen=True)
class OpCounts:
    """SEAL operations of one batch, per plaintext modulus, and what a batch holds.

    Attributes:
        batch: Inputs one batch holds (LATENCY: 1 or 2; THROUGHPUT: the slots).
        poly_degree: N.
        primes: Data primes at the top level (L).
        runs: Times the circuit runs per batch (BFV: the CRT primes; CKKS: 1).
        encryptions, decryptions: Ciphertexts encrypted and decrypted per batch.
        plain_products: Ciphertext-plaintext products.
        key_switches: Rotations and relinearized ciphertext products.
        additions: Ciphertext additions.
        rescales: CKKS rescales.

    Raises:
        ConfigError: a count is negative or a size not positive.
    """

    batch: int
    poly_degree: int
    primes: int
    runs: int = 1
    encryptions: int = 0
    decryptions: int = 0
    plain_products: int = 0
    key_switches: int = 0
    additions: int = 0
    rescales: int = 0

    def __post_init__(self) -> None:
        if min(self.batch, self.poly_degree, self.primes, self.runs) < 1:
            raise ConfigError(f"op counts need a positive batch, N, primes and runs: {self!r}")
        if min(self.encryptions, self.decryptions, self.plain_products, self.key_switches, self.additions,
               self.rescales) < 0:
            raise ConfigError(f"op counts must be non-negative: {self!r}")

    def batch_seconds(self) -> float:
        """Predicted seconds of one batch."""
        u, lv = self.poly_degree / 8192, self.primes
        per_prime = (self.plain_products * MS_PLAIN + self.additions * MS_ADD + self.rescales * MS_RESCALE
                     + self.key_switches * MS_KEY_SWITCH + self.decryptions * MS_DECRYPT
                     + (self.encryptions + self.decryptions) * MS_WIRE + self.encryptions * MS_ENCRYPT)
        ms = (per_prime * lv + self.encryptions * MS_ENCRYPT_FIXED) * u
        return self.runs * ms / 1000.0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"batch": self.batch, "poly_degree": self.poly_degree, "primes": self.primes, "runs": self.runs,
                "encryptions": self.encryptions, "decryptions": self.decryptions,
                "plain_products": self.plain_products, "key_switches": self.key_switches, "additions": self.additions,
                "rescales": self.rescales}


def predict_seconds(counts: OpCounts, inputs: int) -> float:
    """Predicted seconds of a call with ``inputs`` inputs: whole batches of ``counts``.

    Raises:
        ConfigError: ``inputs`` is negative.
    """
    if inputs < 0:
        raise ConfigError(f"inputs must be non-negative, got {inputs}")
    return math.ceil(inputs / counts.batch) * counts.batch_seconds()
