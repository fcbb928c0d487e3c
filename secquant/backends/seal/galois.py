"""Which Galois keys a LATENCY plan makes, and how many key switches each rotation then costs.

A rotation by ``s`` slots is one key switch when the client made a Galois key
for ``s``.  When it did not, SEAL (``Evaluator::rotate_internal``) writes ``s``
in non-adjacent form, ``s = sum_j ±2**k_j`` with no two adjacent powers, and
rotates once per term (a term of ±N/2 slots is the identity and is skipped):
``w(s)`` key switches, ``w`` the NAF weight, each adding its key-switching noise.

Keys are large (one per step: ``(k-1)·2k·N·8`` bytes for k primes, 126 MB at
N=32768 and 16 primes), so a plan chooses between

* :attr:`GaloisKeys.STEPS`: one key per step used: fewest key switches;
* :attr:`GaloisKeys.POWERS_OF_TWO`: keys only for the NAF terms of the steps
  used (at most about ``2·log2(N/2)`` keys): fewer bytes, more key switches;
* :attr:`GaloisKeys.AUTO`: STEPS unless its keys would exceed a byte budget
  and power-of-two keys would be at most half as many.

:class:`RotationKeys` is the choice: the key steps, and the switch count of
every rotation, which the noise bound and the cost model both use.  Pure and
key-less.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from secquant.errors import ConfigError

__all__ = ["DEFAULT_KEY_BUDGET_BYTES", "GaloisKeys", "RotationKeys", "naf", "switch_key_bytes"]

#: AUTO's budget for one-key-per-step Galois keys, uncompressed bytes (1 GiB).
DEFAULT_KEY_BUDGET_BYTES = 1 << 30


class GaloisKeys(enum.Enum):
    """Which Galois keys the client makes (see the module docstring)."""

    AUTO = "auto"
    STEPS = "steps"
    POWERS_OF_TWO = "powers_of_two"


def naf(step: int) -> list[int]:
    """Non-adjacent form of ``step``, least significant term first, exactly as SEAL's ``util::naf``.

    Examples:
        >>> naf(7), naf(8064), naf(-3)
        ([-1, 8], [-128, 8192], [1, -4])
    """
    sign = -1 if step < 0 else 1
    value, out, i = abs(int(step)), [], 0
    while value:
        z = 2 - (value & 3) if value & 1 else 0
        value = (value - z) >> 1
        if z:
            out.append(sign * z * (1 << i))
        i += 1
    return out


def switch_key_bytes(poly_degree: int, n_primes: int) -> int:
    """Uncompressed bytes of one key-switching key (one Galois step, or the relinearization key).

    Args:
        poly_degree: N.
        n_primes: Primes of the chain, the special prime included.
    """
    return (n_primes - 1) * 2 * n_primes * poly_degree * 8


@dataclass(frozen=True)
class RotationKeys:
    """The Galois keys of a plan and what each rotation costs with them.

    Attributes:
        slots: Slots a rotation cycles (CKKS: N/2); steps are taken mod ``slots``.
        steps: Steps in (0, slots) that have a key, sorted.
        policy: STEPS or POWERS_OF_TWO (never AUTO: that is resolved).
        reason: Why this policy, in words.
    """

    slots: int
    steps: tuple[int, ...]
    policy: GaloisKeys
    reason: str = ""

    def __post_init__(self) -> None:
        if self.policy is GaloisKeys.AUTO:
            raise ConfigError("internal: RotationKeys needs a resolved policy, not AUTO")
        bad = [s for s in self.steps if not 0 < s < self.slots]
        if bad:
            raise ConfigError(f"rotation key steps {bad} outside (0, {self.slots})")

    def _terms(self, step: int) -> list[int]:
        """The rotations SEAL performs for ``step`` (mod slots; empty for 0)."""
        s = step % self.slots
        if s == 0:
            return []
        if s in self.steps:
            return [s]
        terms = [t % self.slots for t in naf(s) if abs(t) != self.slots]
        if len(terms) == 1 or any(t not in self.steps for t in terms):
            raise ConfigError(f"rotation by {s}: no Galois key for it or for its NAF terms {naf(s)}")
        return terms

    def switches(self, step: int) -> int:
        """Key switches one rotation by ``step`` takes (0 for a multiple of ``slots``).

        Raises:
            ConfigError: a step these keys cannot rotate by.
        """
        return len(self._terms(step))

    def total(self, steps: Iterable[int]) -> int:
        """Key switches of one rotation by each of ``steps``."""
        return sum(self.switches(s) for s in steps)

    def worst(self, steps: Iterable[int]) -> int:
        """The most key switches any one of ``steps`` takes (0 for none)."""
        return max((self.switches(s) for s in steps), default=0)

    @classmethod
    def make(cls, steps: Iterable[int], slots: int, policy: GaloisKeys = GaloisKeys.STEPS,
             reason: str = "") -> RotationKeys:
        """Keys for rotating by every one of ``steps`` under ``policy`` (STEPS or POWERS_OF_TWO)."""
        used = sorted({int(s) % slots for s in steps} - {0})
        if policy is GaloisKeys.POWERS_OF_TWO:
            used = sorted({t % slots for s in used for t in naf(s) if abs(t) != slots})
        return cls(slots, tuple(used), policy, reason)

    def summary(self, key_bytes: int) -> dict[str, object]:
        """JSON-ready: policy, reason, key count and their uncompressed bytes (``key_bytes`` per key)."""
        return {"policy": self.policy.value, "reason": self.reason, "keys": len(self.steps),
                "bytes_uncompressed": key_bytes * len(self.steps)}
