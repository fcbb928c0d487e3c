"""What a user may choose for the CKKS backend: :class:`CKKSOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secquant.backends.base import Mode
from secquant.backends.release import noise_bound, release_policy
from secquant.backends.seal.ciphertext import Transfer
from secquant.backends.seal.galois import DEFAULT_KEY_BUDGET_BYTES, GaloisKeys
from secquant.backends.seal.privacy import CircuitPrivacy, check_ckks_flood
from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["DEGREES", "MAX_PRIME_BITS", "MIN_SCALE_BITS", "SECURITY_LEVELS", "CKKSOptions", "GaloisKeys", "Transfer"]

#: Ring degrees N offered.
DEGREES = (4096, 8192, 16384, 32768)
#: SEAL's largest prime.
MAX_PRIME_BITS = 60
#: Smallest prime (and scale) size, in bits.
MIN_SCALE_BITS = 20
#: Security levels offered, in bits; nothing weaker than 128.
SECURITY_LEVELS = (128, 192, 256)


@dataclass(frozen=True)
class CKKSOptions:
    """User choices of ``secquant.compile(qm, "ckks", ...)``; everything else is derived from the bounds.

    Attributes:
        mode: AUTO (default: per call, whichever layout the cost model predicts
            faster, see :mod:`secquant.backends.automode`), LATENCY (one input
            per ciphertext) or THROUGHPUT (inputs across slots); the lower-case
            names are accepted.  A backend built directly with AUTO takes LATENCY.
        security: 128 (default), 192 or 256 bits.
        precision_bits: Target in [0, 50]: the error bound must be at most
            2**-precision_bits of the reference output magnitude (the largest
            |output| seen on calibration data, else the proven bound).
        poly_degree: Force N (else the smallest that meets the target).
        scale_bits: Force B in [20, 59], the bit size of the middle primes (w = B - 1).
        client_rotations: LATENCY: the client encrypts the baby-step rotations
            of its input (b1 ciphertexts instead of one), so the server makes
            no rotation at the top level, where rotations cost the most.
            None (default): True only under ``transfer=LATENCY``.
        client_gather: LATENCY: when the first stage is sparse (a convolution), the
            client packs its inputs by the stage's sparsity pattern
            (:class:`~secquant.backends.seal.gather.SharedGather`) if that needs
            at most ``MAX_GATHER_CHUNKS`` ciphertexts and fewer server rotations
            than baby-step giant-step (under ``transfer=BALANCED``: at most half
            as many, since gathering costs request bytes; under ``BYTES``: only
            a gather that fits one ciphertext).  Default True.
        transfer: Request bytes against latency (:class:`~secquant.backends.seal.ciphertext.Transfer`):
            BALANCED (default), BYTES or LATENCY; the lower-case names are accepted.
        galois_keys: LATENCY: which Galois keys the client makes
            (:class:`~secquant.backends.seal.galois.GaloisKeys`): STEPS (one per
            rotation step: fewest key switches), POWERS_OF_TWO (only the NAF
            terms of the steps: at most about 2·log2(N/2) keys, more key
            switches per rotation) or AUTO (default: STEPS unless those keys
            would exceed ``galois_key_budget_bytes`` and power-of-two keys
            would be at most half as many); lower-case names accepted.
        galois_key_budget_bytes: AUTO's budget for one-key-per-step Galois keys,
            uncompressed bytes (default 1 GiB; at least 1).
        complex_packing: THROUGHPUT: the client packs two input features in each
            slot (its real and imaginary parts, :mod:`~secquant.backends.ckks.pairs`),
            so a request holds half as many ciphertexts; the server pays one key
            switch (a conjugation) per output of the first stage, the client one
            more Galois key, and the error bound of the first stage doubles.  Only
            when the first stage multiplies by integer weights at scale 1 (else
            the plan packs one feature per slot).  None (default): True unless
            ``transfer=LATENCY`` (whose server reads whole inputs' residues straight
            from the wire, so pairing saves it no SEAL load and only adds the
            conjugations: about 1.5x its evaluation).  Ignored in LATENCY mode.
        complete_squares: Also plan every degree-2 polynomial followed by an
            affine stage as a shifted square, ``a2·(x + s)**2 + k`` with ``a2``
            and ``k`` folded into the next stage (one level instead of two,
            :mod:`~secquant.backends.ckks.square`), and keep the cheaper plan
            (smaller N, then fewer primes).  Default True.
        release: What the server releases of the outputs: full logits (None, the
            default) or a :class:`~secquant.dp.release.DiscreteGaussianLogits` (or its
            JSON) with ``resolution_bits=0``, whose integer noise the server adds to the
            result slots at the output scale (:mod:`secquant.backends.release`); the
            last level is sized for outputs plus :attr:`noise_bound`.
        circuit_privacy: How the server finishes its response
            (:class:`~secquant.backends.seal.privacy.CircuitPrivacy`; default OFF):
            RERANDOMIZE adds a fresh encryption of zero; FLOOD also adds Gaussian
            noise to every coefficient, sized for ``flood_security_bits`` of
            security against ``flood_queries`` decrypted responses
            (:func:`~secquant.backends.seal.privacy.ckks_flood_sigma_factor`); the
            stated error grows accordingly and the planner picks scales that keep
            ``precision_bits``, or raises ParameterError.
        flood_security_bits: s in [1, 128] (default 30, OpenFHE's default for CKKS flooding).
        flood_queries: Q in [1, 2**40]: flooded responses one client may decrypt (default 1,
            OpenFHE's default too); each doubling costs half a bit of precision.  Give no
            client a larger query budget than Q.

    Raises:
        ConfigError: a value of the wrong type or out of range.
        ReleaseUnsupportedError: a release policy CKKS cannot apply (rounding, labels).
    """

    mode: Mode = Mode.AUTO
    security: int = 128
    precision_bits: float = 12.0
    poly_degree: int | None = None
    scale_bits: int | None = None
    client_rotations: bool | None = None
    client_gather: bool = True
    transfer: Transfer = Transfer.BALANCED
    galois_keys: GaloisKeys = GaloisKeys.AUTO
    galois_key_budget_bytes: int = DEFAULT_KEY_BUDGET_BYTES
    complex_packing: bool | None = None
    complete_squares: bool = True
    release: Any = None
    circuit_privacy: CircuitPrivacy = CircuitPrivacy.OFF
    flood_security_bits: int = 30
    flood_queries: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "release", release_policy(self.release, "CKKS"))
        object.__setattr__(self, "circuit_privacy",
                           coerce_enum(self.circuit_privacy, CircuitPrivacy, "circuit_privacy"))
        check_ckks_flood(self.flood_security_bits, self.flood_queries)
        object.__setattr__(self, "mode", coerce_enum(self.mode, Mode, "mode"))
        object.__setattr__(self, "galois_keys", coerce_enum(self.galois_keys, GaloisKeys, "galois_keys"))
        budget = self.galois_key_budget_bytes
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"galois_key_budget_bytes must be a positive integer, got {budget!r}")
        object.__setattr__(self, "transfer", coerce_enum(self.transfer, Transfer, "transfer"))
        if self.client_rotations is None:
            object.__setattr__(self, "client_rotations", self.transfer is Transfer.LATENCY)
        if self.complex_packing is None:
            object.__setattr__(self, "complex_packing", self.transfer is not Transfer.LATENCY)
        if self.security not in SECURITY_LEVELS:
            raise ConfigError(
                f"security must be 128, 192 or 256 bits, got {self.security!r}; secquant does not build "
                "CKKS parameters below 128-bit security (SEAL refuses them too)"
            )
        if not (isinstance(self.precision_bits, (int, float)) and 0 <= self.precision_bits <= 50):
            raise ConfigError(f"precision_bits must lie in [0, 50], got {self.precision_bits!r}")
        if self.poly_degree is not None and self.poly_degree not in DEGREES:
            raise ConfigError(f"poly_degree must be one of {DEGREES}, got {self.poly_degree!r}")
        for name in ("client_rotations", "client_gather", "complex_packing", "complete_squares"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.scale_bits is not None and not (MIN_SCALE_BITS <= self.scale_bits <= MAX_PRIME_BITS - 1):
            raise ConfigError(f"scale_bits must lie in [{MIN_SCALE_BITS}, {MAX_PRIME_BITS - 1}], "
                              f"got {self.scale_bits!r}")

    @property
    def noise_bound(self) -> int:
        """Largest |noise| the release policy adds to one output (0 for full logits), in output steps."""
        return noise_bound(self.release)
