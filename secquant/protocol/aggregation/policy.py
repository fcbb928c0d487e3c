"""A client's own floors, and the check of a round before a client encrypts anything.

A client takes the round's parameters only from the key-holder's signed
announcement, verified against the key-holder key the client pinned, and then
applies floors that come from its own options and never from the network
(:class:`ClientPolicy`): the Paillier modulus size, whether small test keys are
allowed at all, an ε ceiling, where its encryption randomness comes from, and
plain HTTP or unverified TLS.  :func:`verify_round` is that check.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from secquant.errors import ConfigError, SecquantError
from secquant.protocol.aggregation.config import RoundConfig
from secquant.protocol.aggregation.credentials import ROUND_CONTEXT, RoundAnnouncement, open_body
from secquant.protocol.errors import AuthenticationError
from secquant.quant.primitives import coerce_enum

__all__ = ["ClientPolicy", "EncryptionRandomness", "RoundPolicyError", "VerifiedRound", "verify_round"]

log = logging.getLogger("secquant.protocol")


class RoundPolicyError(SecquantError, PermissionError):
    """A client refuses a round: it is below the client's own floor (key size, ε, transport)."""


class EncryptionRandomness(enum.Enum):
    """Where a client's Paillier randomness (an n-th residue mod n²) comes from."""

    OWN = "own"  #: r**n for a uniform r from the client's `secrets`: trusts nothing the key-holder chose
    DJN = "djn"  #: hs**a with the key-holder's hs (2x faster); only as strong as hs was honestly made


@dataclass(frozen=True)
class ClientPolicy:
    """What a client accepts, whatever the key-holder or the aggregator say.

    Attributes:
        min_key_bits: Smallest Paillier modulus accepted (even, >= 2048; 3072 default, about 128-bit security).
        allow_insecure_key_bits: Explicit, logged opt-out for tests: admits ``min_key_bits`` down to 512.
            A round's own ``allow_insecure_key_bits`` is ignored.
        max_epsilon: Refuse a round whose accounted ε (at its δ, with all planned shares) exceeds this;
            None: no ceiling.
        randomness: ``own`` (default) or ``djn``; see :class:`EncryptionRandomness`.
        allow_insecure_transport: Explicit, logged opt-out for test rigs: admits ``http://`` to a
            non-loopback host and ``verify=False``.

    Raises:
        ConfigError: a field out of range.
    """

    min_key_bits: int = 3072
    allow_insecure_key_bits: bool = False
    max_epsilon: float | None = None
    randomness: EncryptionRandomness | str = EncryptionRandomness.OWN
    allow_insecure_transport: bool = False

    def __post_init__(self) -> None:
        low = 512 if self.allow_insecure_key_bits else 2048
        bits = self.min_key_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or bits % 2 or not low <= bits <= 8192:
            raise ConfigError(f"min_key_bits must be an even int in [{low}, 8192], got {bits!r}"
                              + ("" if self.allow_insecure_key_bits else " (below 2048 only with "
                                 "allow_insecure_key_bits=True, for tests)"))
        if self.allow_insecure_key_bits:
            log.warning("INSECURE client policy: Paillier keys down to %d bits are accepted (tests only)", bits)
        if self.max_epsilon is not None and (isinstance(self.max_epsilon, bool) or not isinstance(
                self.max_epsilon, (int, float)) or not math.isfinite(self.max_epsilon) or self.max_epsilon <= 0):
            raise ConfigError(f"max_epsilon must be a finite number > 0 or None, got {self.max_epsilon!r}")
        object.__setattr__(self, "randomness", coerce_enum(self.randomness, EncryptionRandomness, "randomness"))

    def check_transport(self, url: str, verify: Any) -> None:
        """Refuse plain HTTP to a non-loopback host and ``verify=False`` (unless opted out).

        Raises:
            RoundPolicyError: the transport is below the floor.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        problems = []
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            problems.append(f"{url!r} is not https (plain http is accepted only on loopback)")
        if verify is False:
            problems.append("verify=False turns off TLS certificate checks")
        if problems and not self.allow_insecure_transport:
            raise RoundPolicyError("; ".join(problems) + ". Use https with a verified certificate "
                                   "(allow_insecure_transport=True only for test rigs)")
        if problems:
            log.warning("INSECURE transport accepted by policy: %s", "; ".join(problems))

    def check_key(self, material: bytes, config: RoundConfig) -> Any:
        """The round's Paillier public key, if it meets this client's floor.

        Raises:
            RoundPolicyError: fewer bits than ``min_key_bits`` (or below 2048 without this policy's
                opt-out), a size other than the config's, or a degenerate DJN element.
        """
        from secquant.backends.paillier.keys import load_public_key
        from secquant.errors import ParameterError

        try:
            key = load_public_key(bytes(material), allow_insecure=self.allow_insecure_key_bits)
        except ParameterError as exc:
            raise RoundPolicyError(f"the round's Paillier key is below this client's floor: {exc}") from None
        if key.bits < self.min_key_bits:
            raise RoundPolicyError(f"the round's Paillier key has {key.bits} bits; this client's floor is "
                                   f"{self.min_key_bits} (ClientPolicy.min_key_bits)")
        if key.bits != config.key_bits:
            raise RoundPolicyError(f"the round's public key has {key.bits} bits; its config says {config.key_bits}")
        n2 = int(key.nsquare)
        if self.randomness is EncryptionRandomness.DJN and int(key.hs) in (1, n2 - 1):
            raise RoundPolicyError("the key-holder's DJN element hs is degenerate; use randomness='own'")
        return key

    def check_config(self, config: RoundConfig) -> None:
        """Refuse a round whose accounted ε exceeds ``max_epsilon``.

        Raises:
            RoundPolicyError: ε too large.
        """
        if self.max_epsilon is not None:
            eps = config.epsilon()
            if eps > self.max_epsilon:
                raise RoundPolicyError(f"the round accounts ε = {eps:.3g} at δ = {config.delta:g}; this client's "
                                       f"ceiling is {self.max_epsilon:g} (ClientPolicy.max_epsilon)")


@dataclass(frozen=True)
class VerifiedRound:
    """A round a client checked: the signed announcement, the key that passed the floors, the status.

    Attributes:
        announcement: Verified against the pinned key-holder key.
        public_key: The Paillier public key (``PaillierPublicKey``).
        status: The aggregator's unsigned status (state, top-up assignments).
    """

    announcement: RoundAnnouncement
    public_key: Any
    status: dict[str, Any]

    @property
    def config(self) -> RoundConfig:
        """The round's parameters (from the signed announcement)."""
        return self.announcement.config


def verify_round(status: dict[str, Any], round_id: str, keyholder_keys: dict[str, Any], party_id: str,
                 own_key: bytes, policy: ClientPolicy) -> VerifiedRound:
    """Check a round before encrypting anything for it.

    The announcement must be signed by a pinned key-holder key, name ``round_id``,
    be live, list ``party_id`` with this client's own public key, and pass
    ``policy`` (key size, ε).

    Args:
        status: ``GET /v1/rounds/{id}`` as a dict.
        round_id: The round the client was asked to join.
        keyholder_keys: ``{key id: Ed25519 public key}`` pinned by the client.
        party_id: This client's id.
        own_key: This client's raw 32-byte Ed25519 public key.
        policy: This client's floors.

    Raises:
        AuthenticationError: not signed by the pinned key-holder, another round, expired, or
            this party not listed with its key.
        RoundPolicyError: below the client's floor.
    """
    ann = RoundAnnouncement.from_bytes(open_body(status.get("announcement"), keyholder_keys, ROUND_CONTEXT))
    if ann.round_id != round_id:
        raise AuthenticationError(f"the signed announcement is for round {ann.round_id[:12]!r}, not {round_id[:12]!r}")
    ann.check_live()
    if ann.parties.parties.get(party_id) != own_key:
        raise AuthenticationError(f"the key-holder's round does not list party {party_id!r} with this client's key")
    key = policy.check_key(ann.public_key, ann.config)
    policy.check_config(ann.config)
    return VerifiedRound(announcement=ann, public_key=key, status=status)
