"""Slot packing: guard-bit properties (hypothesis), known answers, and packing real ciphertexts.

Oracles: Python's exact integers (encode then decode must return the values,
sums must decode to slot-wise sums), hand-computed packed integers, and
decryption of homomorphically packed ciphertexts under a fixed known-prime key.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secquant.backends.paillier.crypto import Decryptor, Encryptor, pack_ciphertexts
from secquant.backends.paillier.packing import PackingLayout, guard_bits_for
from secquant.errors import ConfigError, ModulusOverflowError

try:
    from tests.backends.paillier_known_keys import known_key
except ImportError:  # pytest's rootdir-less import mode
    from paillier_known_keys import known_key


@functools.lru_cache(maxsize=1)
def _crypto() -> tuple[Encryptor, Decryptor]:
    key = known_key(2048)
    return Encryptor(key), Decryptor(key)


def test_known_answer_vector() -> None:
    layout = PackingLayout(slot_bits=8, slots=3, value_bound=100, guard_bits=0, plaintext_bits=24)
    assert layout.encode([1, -2, 3]) == 1 - 2 * 256 + 3 * 65536 == 196097
    assert layout.decode(196097, 3) == [1, -2, 3]
    assert layout.encode([-1]) == -1 and layout.decode(-1, 1) == [-1]
    # Two's-complement-like borrow: -1 in slot 0 and 0 in slot 1 is -1, not 255.
    assert layout.decode(layout.encode([-1, 0, 5]), 3) == [-1, 0, 5]


def test_for_bound_sizes_guard_bits_from_summands() -> None:
    layout = PackingLayout.for_bound(1000, 3071, max_summands=10)
    assert layout.value_bits == 11 and layout.guard_bits == 4 == guard_bits_for(10)
    assert layout.slot_bits == 15 and layout.slots == 3071 // 15
    assert layout.max_summands == 16


@settings(max_examples=200, deadline=None)
@given(
    bound=st.integers(0, 2**40),
    summands=st.integers(1, 64),
    extra=st.integers(0, 3),
    plaintext_bits=st.integers(64, 3071),
    data=st.data(),
)
def test_sums_of_packed_vectors_decode_exactly(bound: int, summands: int, extra: int, plaintext_bits: int,
                                               data: st.DataObject) -> None:
    """Up to max_summands vectors with |v| <= bound, packed and added, decode to the slot-wise sums."""
    layout = PackingLayout.for_bound(bound, plaintext_bits, max_summands=summands, extra_guard_bits=extra)
    count = data.draw(st.integers(0, min(layout.slots, 40)))
    vectors = data.draw(st.lists(st.lists(st.integers(-bound, bound), min_size=count, max_size=count),
                                 min_size=1, max_size=summands))
    total = sum(layout.encode(v) for v in vectors)
    expected = [sum(col) for col in zip(*vectors)] if count else []
    assert layout.decode(total, count) == expected
    modulus = (1 << plaintext_bits) + 1 + 2 * data.draw(st.integers(0, 2**20))
    assert layout.decode_mod(total % modulus, modulus, count) == expected
    assert layout.overflows(expected) == []


@settings(max_examples=100, deadline=None)
@given(bound=st.integers(1, 2**20), data=st.data())
def test_values_past_the_slot_are_refused_or_detected(bound: int, data: st.DataObject) -> None:
    layout = PackingLayout.for_bound(bound, 256)
    too_big = data.draw(st.integers(layout.slot_limit, 4 * layout.slot_limit)) * data.draw(st.sampled_from([1, -1]))
    if too_big == -layout.slot_limit:
        too_big -= 1
    assert layout.overflows([0, too_big])[0].index == 1
    with pytest.raises(ModulusOverflowError):
        layout.encode([too_big])
    # A sum that overflows the last slot leaves bits above it: decoding refuses it.
    top = layout.slots - 1
    packed = layout.encode([0] * top + [layout.slot_limit - 1]) + (1 << (layout.slot_bits * top))
    with pytest.raises(ModulusOverflowError):
        layout.decode(packed, layout.slots)


def test_layout_validation() -> None:
    with pytest.raises(ConfigError):
        PackingLayout(slot_bits=8, slots=3, value_bound=1000, guard_bits=0, plaintext_bits=24)  # 1000 needs 11 bits
    with pytest.raises(ConfigError):
        PackingLayout(slot_bits=8, slots=4, value_bound=10, guard_bits=0, plaintext_bits=24)  # 32 bits > 24
    with pytest.raises(ConfigError):
        PackingLayout.for_bound(2**100, 64)
    layout = PackingLayout.for_bound(10, 64)
    with pytest.raises(ConfigError):
        layout.encode([0] * (layout.slots + 1))
    with pytest.raises(ConfigError):
        layout.decode_mod(0, 2**32, 1)  # modulus smaller than the layout


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_homomorphic_packing_of_real_ciphertexts(data: st.DataObject) -> None:
    """Encrypt values, pack the ciphertexts by Horner's rule, decrypt once: the slots come back.

    2048-bit known-prime key: the property holds for any key size and 2048 bits keeps it fast.
    """
    key = known_key(2048)
    bound = data.draw(st.integers(1, 2**30))
    layout = PackingLayout.for_bound(bound, key.public.bits - 1, extra_guard_bits=1)
    values = data.draw(st.lists(st.integers(-bound, bound), min_size=1, max_size=min(layout.slots, 12)))
    encryptor, decryptor = _crypto()
    cts = encryptor.encrypt(values)
    packed = pack_ciphertexts(cts, layout.slot_bits, key.public.nsquare)
    residue = decryptor.decrypt([packed])[0]
    assert layout.decode_mod(int(residue), int(key.public.n), len(values)) == values
