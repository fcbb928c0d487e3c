"""What a user may choose for the BFV backend: :class:`BFVOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from secquant.backends.base import Mode
from secquant.backends.release import noise_bound, release_policy
from secquant.backends.seal.ciphertext import Transfer
from secquant.backends.seal.privacy import CircuitPrivacy
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["DEFAULT_MARGIN", "POLY_DEGREES", "SECURITY_LEVELS", "BFVOptions", "Transfer"]

#: Ring degrees N offered (smaller rings hold no useful circuit at 128-bit security).
POLY_DEGREES = (4096, 8192, 16384, 32768)
#: Security levels offered, in bits; nothing weaker than 128.
SECURITY_LEVELS = (128, 192, 256)
#: Default bits of estimated noise budget left at the end.
DEFAULT_MARGIN = 10


def _int_or_none(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


@dataclass(frozen=True)
class BFVOptions:
    """User choices of ``secquant.compile(qm, "bfv", ...)``; everything else comes from ``qm.bounds()``.

    Attributes:
        mode: ``AUTO`` (default: per call, whichever layout the cost model
            predicts faster, see :mod:`secquant.backends.automode`),
            ``THROUGHPUT`` (one ciphertext per feature, N inputs per batch, no
            Galois keys) or ``LATENCY`` (one input per ciphertext); the
            lower-case names are accepted.  A backend built directly with AUTO
            takes THROUGHPUT.
        plain_modulus: Force one plaintext prime t (no CRT); it must be prime,
            = 1 mod 2N, and at least ``qm.modulus_needed`` (checked when compiling).
        poly_degree: Force N, one of :data:`POLY_DEGREES`.
        security: 128 (default), 192 or 256 bits.
        margin: Bits of estimated noise budget to keep at the end (>= 1; default 10).
        transfer: Request bytes against latency (:class:`~secquant.backends.seal.ciphertext.Transfer`):
            BALANCED (default) and BYTES send packed ciphertexts, LATENCY SEAL's zstd blobs.
        circuit_privacy: How the server finishes its response
            (:class:`~secquant.backends.seal.privacy.CircuitPrivacy`; default OFF).
        inputs_per_call: THROUGHPUT: how many inputs a call usually carries.  None
            (default) chooses the ring cheapest per input of full batches (N inputs
            each); a number chooses it for ``ceil(inputs_per_call / N)`` batches, so a
            call of a few hundred inputs takes a smaller ring: less time, memory and
            request bytes (MNIST CNN, 256 inputs: N=8192 with two CRT primes instead
            of N=16384).  Any call size still works.
        release: What the server releases of the outputs: full logits (None, the
            default) or a :class:`~secquant.dp.release.DiscreteGaussianLogits` (or its
            JSON) with ``resolution_bits=0``, whose noise the server adds to the result
            slots under every CRT prime (:mod:`secquant.backends.release`); the CRT
            modulus is widened by :attr:`noise_bound`.

    Raises:
        ConfigError: a value of the wrong type or out of range.
        ReleaseUnsupportedError: a release policy BFV cannot apply (rounding, labels).
    """

    mode: Mode = Mode.AUTO
    plain_modulus: int | None = None
    poly_degree: int | None = None
    security: int = 128
    margin: int = DEFAULT_MARGIN
    transfer: Transfer = Transfer.BALANCED
    circuit_privacy: CircuitPrivacy = CircuitPrivacy.OFF
    inputs_per_call: int | None = None
    release: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "release", release_policy(self.release, "BFV"))
        object.__setattr__(self, "mode", coerce_enum(self.mode, Mode, "mode"))
        object.__setattr__(self, "transfer", coerce_enum(self.transfer, Transfer, "transfer"))
        object.__setattr__(self, "circuit_privacy",
                           coerce_enum(self.circuit_privacy, CircuitPrivacy, "circuit_privacy"))
        plain = _int_or_none(self.plain_modulus, "plain_modulus")
        if plain is not None and plain < 2:
            raise ConfigError(f"plain_modulus must be a prime >= 2, got {plain}")
        object.__setattr__(self, "plain_modulus", plain)
        if self.poly_degree is not None and self.poly_degree not in POLY_DEGREES:
            raise ConfigError(f"poly_degree must be one of {POLY_DEGREES}, got {self.poly_degree!r}")
        if self.security not in SECURITY_LEVELS:
            raise ConfigError(f"security must be 128, 192 or 256 bits (nothing weaker is offered), "
                              f"got {self.security!r}")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 1:
            raise ConfigError(f"margin must be a positive number of bits, got {self.margin!r}")
        calls = _int_or_none(self.inputs_per_call, "inputs_per_call")
        if calls is not None and calls < 1:
            raise ConfigError(f"inputs_per_call must be a positive number of inputs, got {calls}")
        object.__setattr__(self, "inputs_per_call", calls)

    @property
    def noise_bound(self) -> int:
        """Largest |noise| the release policy adds to one output (0 for full logits), in output steps."""
        return noise_bound(self.release)
