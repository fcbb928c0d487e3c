"""Slot packing of signed integers into one additively homomorphic plaintext.

A Paillier plaintext is an integer mod ``n`` of about ``key_bits`` bits, far
wider than the values a quantized model produces.  Packing puts ``slots``
signed integers side by side, ``slot_bits`` apart::

    packed = v[0] + v[1]·2**b + v[2]·2**(2b) + ...        (b = slot_bits)

The slots are *signed digits*: a slot holds any integer in
``[-2**(b-1), 2**(b-1))`` and decoding takes the centered residue mod ``2**b``
slot by slot, carrying the borrow upwards, so negative values need no offset.
Adding two packed integers adds them slot by slot, which is what makes packing
useful under Paillier: the product of two ciphertexts decrypts to the sum of
the packed vectors, and ``c**(2**(k·b))`` moves a ciphertext's value into slot
``k`` (see :func:`secquant.backends.paillier.crypto.pack_ciphertexts`).

Guard bits are the headroom that makes sums safe.  A layout is sized from a
proven bound ``|v| <= value_bound`` of one packed value and the number of packed
vectors that may be summed, ``max_summands``::

    value_bits = bit_length(value_bound) + 1              (sign)
    guard_bits = ceil(log2(max_summands)) + extra_guard_bits
    slot_bits  = value_bits + guard_bits

so every slot of a sum of up to ``max_summands`` packed vectors still lies in
``[-2**(b-1), 2**(b-1))`` and decodes exactly.  ``slots`` is the largest count
with ``slots·slot_bits <= plaintext_bits``, where ``plaintext_bits`` is one bit
less than the modulus (``n > 2**(plaintext_bits)``), so the packed integer stays
inside the centered window ``(-n/2, n/2)`` and a residue mod ``n`` decodes too.

The module is pure integer arithmetic, no keys and no state: secure inference
(:mod:`secquant.backends.paillier.server`) packs the outputs of a layer, and secure
aggregation can pack client updates with ``max_summands`` = number of clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from secquant.errors import ConfigError, ModulusOverflowError

__all__ = ["PackingLayout", "SlotOverflow", "guard_bits_for"]


@dataclass(frozen=True)
class SlotOverflow:
    """One slot whose value would not decode.

    Attributes:
        index: Position of the value in the packed sequence (0-based).
        value: The value.
        limit: The largest absolute value that slot width admits
            (``2**(slot_bits-1)`` for negative values, one less for positive).
    """

    index: int
    value: int
    limit: int


@dataclass(frozen=True)
class PackingLayout:
    """How signed integers share one plaintext.

    Attributes:
        slot_bits: Width ``b`` of one slot in bits (>= 2).
        slots: Slots per plaintext (>= 1).
        value_bound: Proven bound on |one packed value| (>= 0).
        guard_bits: Headroom bits above ``value_bits`` (>= 0); a slot can hold
            the sum of ``2**guard_bits`` values of size ``value_bound``.
        plaintext_bits: Bits the packed integer may use: the plaintext modulus
            exceeds ``2**plaintext_bits`` (for Paillier, ``key_bits - 1``).

    Raises:
        ConfigError: a field is out of range, the slot is narrower than
            ``value_bits + guard_bits``, or the slots do not fit the plaintext.
    """

    slot_bits: int
    slots: int
    value_bound: int
    guard_bits: int
    plaintext_bits: int

    def __post_init__(self) -> None:
        for name in ("slot_bits", "slots", "value_bound", "guard_bits", "plaintext_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"PackingLayout.{name} must be an int, got {type(value).__name__}")
        if self.value_bound < 0 or self.guard_bits < 0:
            raise ConfigError(f"value_bound and guard_bits must be >= 0, got {self.value_bound}, {self.guard_bits}")
        if self.slots < 1 or self.slot_bits < 2:
            raise ConfigError(f"need slots >= 1 and slot_bits >= 2, got {self.slots}, {self.slot_bits}")
        if self.slot_bits < self.value_bits + self.guard_bits:
            raise ConfigError(
                f"slot_bits={self.slot_bits} cannot hold value_bits={self.value_bits} plus "
                f"guard_bits={self.guard_bits}; use PackingLayout.for_bound"
            )
        if self.slots * self.slot_bits > self.plaintext_bits:
            raise ConfigError(
                f"{self.slots} slots of {self.slot_bits} bits exceed the {self.plaintext_bits}-bit plaintext"
            )

    # -- construction --------------------------------------------------------
    @classmethod
    def for_bound(
        cls,
        value_bound: int,
        plaintext_bits: int,
        *,
        max_summands: int = 1,
        extra_guard_bits: int = 0,
        max_slots: int | None = None,
    ) -> PackingLayout:
        """The densest layout for values with ``|v| <= value_bound``.

        Args:
            value_bound: Proven bound on |one packed value| (an int >= 0).
            plaintext_bits: Bits available; the plaintext modulus must exceed
                ``2**plaintext_bits`` (for a Paillier key of k bits, k - 1).
            max_summands: How many packed vectors may be added together before
                decoding (>= 1); adds ``ceil(log2(max_summands))`` guard bits.
            extra_guard_bits: Additional guard bits (>= 0), e.g. so that a value
                past its bound is detected on decoding instead of aliasing.
            max_slots: Cap on slots per plaintext (None: as many as fit).

        Raises:
            ConfigError: one slot does not fit the plaintext, or an argument
                is out of range.
        """
        if isinstance(value_bound, bool) or not isinstance(value_bound, int) or value_bound < 0:
            raise ConfigError(f"value_bound must be an int >= 0, got {value_bound!r}")
        if isinstance(max_summands, bool) or not isinstance(max_summands, int) or max_summands < 1:
            raise ConfigError(f"max_summands must be an int >= 1, got {max_summands!r}")
        if extra_guard_bits < 0:
            raise ConfigError(f"extra_guard_bits must be >= 0, got {extra_guard_bits}")
        guard = guard_bits_for(max_summands) + int(extra_guard_bits)
        slot_bits = max(2, value_bound.bit_length() + 1 + guard)
        fit = plaintext_bits // slot_bits
        if fit < 1:
            raise ConfigError(
                f"one slot of {slot_bits} bits (bound {value_bound}, {guard} guard bits) does not fit a "
                f"{plaintext_bits}-bit plaintext; use a larger key or fewer bits"
            )
        slots = fit if max_slots is None else max(1, min(fit, int(max_slots)))
        return cls(slot_bits=slot_bits, slots=slots, value_bound=value_bound, guard_bits=guard,
                   plaintext_bits=int(plaintext_bits))

    # -- derived sizes -------------------------------------------------------
    @property
    def value_bits(self) -> int:
        """Bits of one signed value: ``bit_length(value_bound) + 1``."""
        return self.value_bound.bit_length() + 1

    @property
    def max_summands(self) -> int:
        """How many packed vectors may be summed safely: ``2**guard_bits``."""
        return 1 << self.guard_bits

    @property
    def slot_limit(self) -> int:
        """Slots hold integers in ``[-slot_limit, slot_limit)``: ``2**(slot_bits-1)``."""
        return 1 << (self.slot_bits - 1)

    def plaintexts_for(self, count: int) -> int:
        """Plaintexts (ciphertexts) needed for ``count`` values."""
        return -(-int(count) // self.slots)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "slot_bits": self.slot_bits,
            "value_bits": self.value_bits,
            "guard_bits": self.guard_bits,
            "slots_per_plaintext": self.slots,
            "value_bound": str(self.value_bound),
            "max_summands": self.max_summands,
            "plaintext_bits": self.plaintext_bits,
        }

    # -- checks --------------------------------------------------------------
    def overflows(self, values: Iterable[Any]) -> list[SlotOverflow]:
        """Values that would not decode from a slot of this width (empty if all fit)."""
        lim = self.slot_limit
        return [SlotOverflow(i, int(v), lim) for i, v in enumerate(values) if not -lim <= int(v) < lim]

    # -- encode / decode -----------------------------------------------------
    def encode(self, values: Sequence[Any]) -> int:
        """Pack up to ``slots`` signed values into one integer (possibly negative).

        Raises:
            ConfigError: more values than slots.
            ModulusOverflowError: a value does not fit its slot.
        """
        if len(values) > self.slots:
            raise ConfigError(f"{len(values)} values do not fit {self.slots} slots; split them with chunks()")
        bad = self.overflows(values)
        if bad:
            raise ModulusOverflowError(
                f"{len(bad)} value(s) do not fit {self.slot_bits}-bit slots (first: index {bad[0].index}, "
                f"value {bad[0].value}, slots hold [-{self.slot_limit}, {self.slot_limit}))",
                bound=max(abs(b.value) for b in bad),
            )
        packed = 0
        for v in reversed(values):
            packed = (packed << self.slot_bits) + int(v)
        return packed

    def decode(self, packed: int, count: int) -> list[int]:
        """Unpack ``count`` signed values from an integer made by :meth:`encode` (or sums of them).

        Raises:
            ConfigError: ``count`` is outside ``[0, slots]``.
            ModulusOverflowError: bits remain above the last slot: the packed
                integer is not a sum of in-range slots (overflow or wrong key).
        """
        if not 0 <= count <= self.slots:
            raise ConfigError(f"count must lie in [0, {self.slots}], got {count}")
        b, lim = self.slot_bits, self.slot_limit
        mask = (1 << b) - 1
        rest = int(packed)
        out = []
        for _ in range(count):
            digit = rest & mask
            if digit >= lim:
                digit -= 1 << b
            out.append(digit)
            rest = (rest - digit) >> b
        if rest != 0:
            raise ModulusOverflowError(
                f"packed plaintext has bits above its {count} slots of {self.slot_bits} bits: a slot "
                "overflowed its guard bits, or the ciphertext was made under another layout or key"
            )
        return out

    def encode_mod(self, values: Sequence[Any], modulus: int) -> int:
        """:meth:`encode` reduced to a residue in ``[0, modulus)``.

        Raises:
            ConfigError: the modulus is not larger than ``2**plaintext_bits``.
        """
        self._check_modulus(modulus)
        return self.encode(values) % int(modulus)

    def decode_mod(self, residue: int, modulus: int, count: int) -> list[int]:
        """Decode a residue mod ``modulus`` (centered lift, then :meth:`decode`).

        Raises:
            ConfigError: the modulus is not larger than ``2**plaintext_bits``.
            ModulusOverflowError: see :meth:`decode`.
        """
        m = self._check_modulus(modulus)
        r = int(residue) % m
        return self.decode(r - m if r > m // 2 else r, count)

    def chunks(self, values: Sequence[Any]) -> list[Sequence[Any]]:
        """Split ``values`` into consecutive groups of at most ``slots``."""
        return [values[i : i + self.slots] for i in range(0, len(values), self.slots)]

    def _check_modulus(self, modulus: int) -> int:
        m = int(modulus)
        if m <= 1 << self.plaintext_bits:
            raise ConfigError(
                f"a modulus of {m.bit_length()} bits is too small for a {self.plaintext_bits}-bit layout"
            )
        return m


def guard_bits_for(max_summands: int) -> int:
    """Guard bits that let ``max_summands`` packed vectors be summed: ``ceil(log2(max_summands))``."""
    if max_summands < 1:
        raise ConfigError(f"max_summands must be >= 1, got {max_summands}")
    return (int(max_summands) - 1).bit_length()

