"""Configuration and accounting of one secure-aggregation round.

A round sums ``n_clients`` update vectors of length ``dim`` in Z_{2^b}.  Each
client clips its update to L2 norm ``clip_norm``, divides by ``granularity``
(γ), rounds with conditional randomized rounding (Kairouz–Liu–Steinke 2021,
Sec. 4) so that ``‖q‖₂ <= norm_bound``, and adds one share of discrete Gaussian
noise N_Z(0, σ²) per coordinate.  The released sum carries ``noise_shares``
independent shares; the privacy claim is the KLS Proposition 14 bound of
:class:`secquant.dp.mechanisms.DistributedDiscreteGaussian` with
``n_clients = min_noise_shares`` (more shares only add independent noise:
post-processing).  When fewer shares than ``min_noise_shares`` reach the sum
(dropouts), :class:`DropoutPolicy` decides: survivors top the noise up, or the
key-holder refuses to release.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["DropoutPolicy", "RoundConfig"]

#: Tail of the summed noise checked against wrap-around, in standard deviations.
WRAP_TAIL_SIGMAS = 14.0
MAX_CLIENTS = 4096
MAX_DIM = 1 << 20


class DropoutPolicy(enum.Enum):
    """What happens when fewer noise shares than ``min_noise_shares`` reach the sum."""

    TOP_UP = "top_up"  #: survivors each add whole extra shares of N_Z(0, σ²) until the count is met
    REFUSE = "refuse"  #: the round is refused; the key-holder never decrypts it


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _int_in(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return value


@dataclass(frozen=True)
class RoundConfig:
    """One aggregation round's public parameters.

    Attributes:
        n_clients: Planned clients, in [1, 4096].
        dim: Length of each update vector, in [1, 2**20].
        clip_norm: L2 clipping norm c > 0 of a client's float update.
        granularity: γ > 0: one integer step is γ in update units.
        sigma: Per-client, per-share σ >= 1/2 of N_Z(0, σ²), in integer steps.
        modulus_bits: b in [2, 62]; the sum is computed in Z_{2^b}.
        min_noise_shares: Noise shares the release must carry, in [1, n_clients]
            (default n_clients); n_clients - min_noise_shares dropouts cost nothing.
        dropout_policy: ``top_up`` or ``refuse`` when fewer shares arrive.
        delta: δ in (0, 1) at which ε is reported.
        key_bits: Paillier modulus bits (>= 2048; 3072 default).
        beta: Failure probability of one conditional-rounding draw, in (0, 1).
        allow_insecure_key_bits: Explicit opt-out permitting key_bits < 2048 (for the
            key-holder's and aggregator's checks only: a client applies its own floor,
            :class:`~secquant.protocol.aggregation.policy.ClientPolicy`).
        min_parties: Fewest distinct verified parties whose updates must be in a released
            sum, in [1, n_clients] (default ``min_noise_shares``: every accounted share
            comes from its own credential, so one party can never stand for several).
            Set it lower to let survivors' top-ups count after dropouts; those top-ups
            are then trusted to be honest noise.

    Raises:
        ConfigError: a field is out of range, or the sum could wrap mod 2^b.
    """

    n_clients: int
    dim: int
    clip_norm: float = 1.0
    granularity: float = 1e-2
    sigma: float = 10.0
    modulus_bits: int = 32
    min_noise_shares: int | None = None
    dropout_policy: DropoutPolicy | str = DropoutPolicy.TOP_UP
    delta: float = 1e-5
    key_bits: int = 3072
    beta: float = math.exp(-0.5)
    allow_insecure_key_bits: bool = False
    min_parties: int | None = None

    def __post_init__(self) -> None:
        _int_in(self.n_clients, "n_clients", 1, MAX_CLIENTS)
        _int_in(self.dim, "dim", 1, MAX_DIM)
        _positive(self.clip_norm, "clip_norm")
        _positive(self.granularity, "granularity")
        if _positive(self.sigma, "sigma") < 0.5:
            raise ConfigError(f"sigma must be at least 1/2 (KLS bound), got {self.sigma}")
        _int_in(self.modulus_bits, "modulus_bits", 2, 62)
        shares = self.n_clients if self.min_noise_shares is None else self.min_noise_shares
        object.__setattr__(self, "min_noise_shares", _int_in(shares, "min_noise_shares", 1, self.n_clients))
        parties = shares if self.min_parties is None else self.min_parties
        object.__setattr__(self, "min_parties", _int_in(parties, "min_parties", 1, self.n_clients))
        object.__setattr__(self, "dropout_policy", coerce_enum(self.dropout_policy, DropoutPolicy, "dropout_policy"))
        if not 0 < self.delta < 1 or not 0 < self.beta < 1:
            raise ConfigError(f"delta and beta must lie in (0, 1), got {self.delta}, {self.beta}")
        low = 512 if self.allow_insecure_key_bits else 2048
        _int_in(self.key_bits, "key_bits", low, 8192)
        worst = self.n_clients * self.norm_bound + WRAP_TAIL_SIGMAS * self.sigma * math.sqrt(2 * self.n_clients)
        if worst >= 2 ** (self.modulus_bits - 1):
            raise ConfigError(
                f"a sum coordinate can reach {worst:.3g} but Z_2^{self.modulus_bits} holds only "
                f"±{2 ** (self.modulus_bits - 1)}; raise modulus_bits or granularity")

    # -- derived -----------------------------------------------------------
    @property
    def required_shares(self) -> int:
        """``min_noise_shares`` as an int (resolved from None in ``__post_init__``)."""
        return int(self.min_noise_shares)  # type: ignore[arg-type]

    @property
    def required_parties(self) -> int:
        """``min_parties`` as an int (resolved from None in ``__post_init__``)."""
        return int(self.min_parties)  # type: ignore[arg-type]

    @property
    def modulus(self) -> int:
        """2^b."""
        return 1 << self.modulus_bits

    @cached_property
    def norm_bound(self) -> float:
        """Bound on ‖q‖₂ after conditional rounding (KLS 2021, eq. for the rounded norm), integer steps."""
        c = self.clip_norm / self.granularity
        d = self.dim
        return math.sqrt(c * c + d / 4 + math.sqrt(2 * math.log(1 / self.beta)) * (c + math.sqrt(d) / 2))

    @property
    def l2_sensitivity(self) -> float:
        """Δ₂ of the integer sum when one client's update is replaced: ``2·norm_bound``."""
        return 2 * self.norm_bound

    @property
    def max_summands(self) -> int:
        """Messages summed in one slot: each client's update plus at most one top-up each."""
        return 2 * self.n_clients

    def ddg(self) -> Any:
        """The :class:`DistributedDiscreteGaussian` for the required shares."""
        from secquant.dp.mechanisms import DistributedDiscreteGaussian

        return DistributedDiscreteGaussian(sigma=self.sigma, n_clients=self.required_shares,
                                           l2_sensitivity=self.l2_sensitivity, dim=self.dim,
                                           modulus_bits=self.modulus_bits)

    def epsilon(self, noise_shares: int | None = None) -> float:
        """ε at ``delta`` of a release carrying ``noise_shares`` shares (default: the required count).

        More shares than ``min_noise_shares`` are accounted as ``min_noise_shares``
        (extra independent noise is post-processing).

        Raises:
            ConfigError: ``noise_shares`` < 1.
        """
        shares = self.required_shares if noise_shares is None else min(noise_shares, self.required_shares)
        return float(self.ddg().epsilon(self.delta, surviving=shares))

    def layout(self) -> Any:
        """Packing of centered residues mod 2^b into Paillier plaintexts (``PackingLayout``)."""
        from secquant.backends.paillier.packing import PackingLayout

        return PackingLayout.for_bound(1 << (self.modulus_bits - 1), self.key_bits - 1, max_summands=self.max_summands)

    def data_slots(self) -> int:
        """Update values per Paillier plaintext: the layout's slots but the last, which holds an integrity tag.

        Raises:
            ConfigError: the layout has a single slot (cannot happen for key_bits >= 512, b <= 62).
        """
        slots = int(self.layout().slots)
        if slots < 2:
            raise ConfigError(f"a {self.key_bits}-bit plaintext holds only {slots} slot; need 2 (data and tag)")
        return slots - 1

    def ciphertexts_per_message(self) -> int:
        """Paillier ciphertexts of update data in one client message (plus one tag-seed ciphertext on the wire)."""
        return -(-self.dim // self.data_slots())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields (the wire form of the round)."""
        out = asdict(self)
        out["dropout_policy"] = self.dropout_policy.value  # type: ignore[union-attr]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundConfig:
        """Inverse of :meth:`to_json`.

        Raises:
            ConfigError: unknown or invalid fields.
        """
        if not isinstance(data, dict):
            raise ConfigError("a round config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ConfigError(f"unknown round config fields: {sorted(extra)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid round config: {exc}") from exc
