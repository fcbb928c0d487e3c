"""What a user may choose for the Paillier backend: :class:`PaillierOptions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secquant.backends.base import Mode
from secquant.backends.paillier.crypto import Randomness
from secquant.backends.paillier.keys import (
    DEFAULT_KEY_BITS,
    PaillierPrivateKey,
    check_key_bits,
)
from secquant.backends.release import noise_bound, release_policy
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["MAX_GUARD_BITS", "PaillierOptions"]

#: Most spare bits per packed slot a user may ask for.
MAX_GUARD_BITS = 64


@dataclass(frozen=True)
class PaillierOptions:
    """User choices of ``secquant.compile(qm, "paillier", ...)``; the packing comes from ``qm.bounds()``.

    Attributes:
        key_bits: Bits of n (None: the bits of ``private_key``, else 3072, about
            128-bit security); below 2048 refused unless ``allow_insecure=True``.
        allow_insecure: Explicit opt-out admitting small keys (tests only).
        interactive: Allow models with Square/Poly layers; the client then
            learns every pre-activation (see ``protocols/paillier-inference.md``).
        randomness: ``DJN`` (default; ``hs**a`` with a of key_bits/2 bits) or
            ``FULL`` (textbook ``r**n``); the lower-case names are accepted.
        guard_bits: Spare bits per packed slot above the proven bound, in
            [0, 64] (default 1), so an out-of-bound value is detected instead
            of aliasing.
        mode: Accepted for API symmetry; Paillier always packs the outputs of
            the whole batch together.
        private_key: Use this key pair instead of generating one per client
            (fixed keys for tests, or reuse of an expensive 3072-bit key).
        release: What the server releases of the final outputs: full logits
            (None, the default) or a :class:`~secquant.dp.release.DiscreteGaussianLogits`
            (or its JSON) with ``resolution_bits=0``, whose noise the server adds to
            the encrypted outputs; the last round's slots are widened by
            :func:`noise_bound`.  Rounding policies are refused
            (:class:`~secquant.protocol.errors.ReleaseUnsupportedError`).

    Raises:
        ConfigError: a value of the wrong type or out of range, or a key of
            another size than ``key_bits``.
        ParameterError: ``key_bits`` below 2048 without ``allow_insecure``.
        ReleaseUnsupportedError: a release policy Paillier cannot apply.
    """

    key_bits: int | None = None
    allow_insecure: bool = False
    interactive: bool = False
    randomness: Randomness = Randomness.DJN
    guard_bits: int = 1
    mode: Mode = Mode.LATENCY
    private_key: PaillierPrivateKey | None = field(default=None, repr=False)
    release: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "release", release_policy(self.release, "Paillier"))
        for name in ("allow_insecure", "interactive"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        key = self.private_key
        if key is not None and not isinstance(key, PaillierPrivateKey):
            raise ConfigError("private_key must be a PaillierPrivateKey (see paillier.keys.keypair_from_primes)")
        bits = self.key_bits if self.key_bits is not None else key.public.bits if key is not None else DEFAULT_KEY_BITS
        object.__setattr__(self, "key_bits", check_key_bits(bits, allow_insecure=self.allow_insecure))
        if key is not None and key.public.bits != self.key_bits:
            raise ConfigError(f"private_key has {key.public.bits} bits but key_bits={self.key_bits}")
        object.__setattr__(self, "randomness", coerce_enum(self.randomness, Randomness, "randomness"))
        guard = self.guard_bits
        if isinstance(guard, bool) or not isinstance(guard, int) or not 0 <= guard <= MAX_GUARD_BITS:
            raise ConfigError(f"guard_bits must be an int in [0, {MAX_GUARD_BITS}], got {guard!r}")
        object.__setattr__(self, "mode", coerce_enum(self.mode, Mode, "mode"))

    @property
    def noise_bound(self) -> int:
        """Largest |noise| the release policy adds to one final output (0 for full logits)."""
        return noise_bound(self.release)

    @property
    def bits(self) -> int:
        """``key_bits`` after defaulting (always an int)."""
        return int(self.key_bits) if self.key_bits is not None else DEFAULT_KEY_BITS
