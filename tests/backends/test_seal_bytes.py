"""SEAL's ciphertext bytes, parsed and written with numpy, round-trip through SEAL itself."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from secquant.backends.seal.ciphertext import check_fresh, from_bytes, to_bytes
from secquant.errors import ConfigError, SecquantError

sa = pytest.importorskip("tenseal.sealapi")


@pytest.fixture(scope="module")
def bfv(tmp_path_factory):
    n = 4096
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.BFVDefault(n, sa.SEC_LEVEL_TYPE.TC128))
    parms.set_plain_modulus(sa.PlainModulus.Batching(n, 20))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
    keygen = sa.KeyGenerator(ctx)
    path = str(tmp_path_factory.mktemp("seal") / "obj")
    return {"ctx": ctx, "enc": sa.Encryptor(ctx, keygen.secret_key()), "dec": sa.Decryptor(ctx, keygen.secret_key()),
            "encoder": sa.BatchEncoder(ctx), "path": path,
            "moduli": [int(q.value()) for q in ctx.first_context_data().parms().coeff_modulus()]}


def _save(obj, path):
    obj.save(path)
    with open(path, "rb") as fh:
        return fh.read()


def _load(blob, kit):
    with open(kit["path"], "wb") as fh:
        fh.write(blob)
    ct = sa.Ciphertext(kit["ctx"])
    ct.load(kit["ctx"], kit["path"])
    return ct


def _encrypt(kit, values, seeded=False):
    pt = sa.Plaintext()
    kit["encoder"].encode(values, pt)
    if seeded:
        return kit["enc"].encrypt_symmetric(pt)
    ct = sa.Ciphertext()
    kit["enc"].encrypt_symmetric(pt, ct)
    return ct


def test_round_trip_through_seal(bfv):
    values = list(range(4096))
    meta, data = from_bytes(_save(_encrypt(bfv, values), bfv["path"]))
    assert data.shape == (2, len(bfv["moduli"]), 4096) and meta.size == 2 and not meta.is_ntt_form
    check_fresh(meta, data, list(bfv["ctx"].first_parms_id()), bfv["moduli"], False, "ct")
    back = _load(to_bytes(meta, data.copy()), bfv)
    pt = sa.Plaintext()
    bfv["dec"].decrypt(back, pt)
    assert list(bfv["encoder"].decode_uint64(pt)) == values
    # negating the residues by hand decrypts to the negation: the bytes are the ciphertext
    q = np.array(bfv["moduli"], dtype=np.uint64)[None, :, None]
    neg = np.where(data == 0, data, q - data)
    bfv["dec"].decrypt(_load(to_bytes(meta, neg), bfv), pt)
    t = bfv["ctx"].first_context_data().parms().plain_modulus().value()
    assert list(bfv["encoder"].decode_uint64(pt)) == [(-v) % t for v in values]


def test_seeded_and_malformed_blobs_are_refused(bfv):
    seeded = _save(_encrypt(bfv, [1] * 4096, seeded=True), bfv["path"])
    with pytest.raises(ConfigError, match="seeded"):
        from_bytes(seeded)
    good = _save(_encrypt(bfv, [1] * 4096), bfv["path"])
    for bad in (good[:10], good[:-5], b"\x00" * 40, good[:5] + b"\x07" + good[6:]):
        with pytest.raises(ConfigError) as info:
            from_bytes(bad)
        assert isinstance(info.value, SecquantError)


def test_check_fresh_catches_level_form_and_range(bfv):
    meta, data = from_bytes(_save(_encrypt(bfv, [3] * 4096), bfv["path"]))
    first, moduli = list(bfv["ctx"].first_parms_id()), bfv["moduli"]
    with pytest.raises(ConfigError, match="fresh"):
        check_fresh(meta, data, first, moduli, True, "ct")  # BFV inputs are not in NTT form
    with pytest.raises(ConfigError, match="fresh"):
        check_fresh(dataclasses.replace(meta, size=3), data, first, moduli, False, "ct")
    bad = data.copy()
    bad[1, 0, 7] = moduli[0]
    with pytest.raises(ConfigError, match="at or above its prime"):
        check_fresh(meta, bad, first, moduli, False, "ct")


def test_decompression_is_bounded():
    """A blob whose payload inflates past the largest ciphertext is refused, not inflated."""
    import zlib

    body = zlib.compress(b"\x00" * (30 * 2**20))
    header = struct.pack("<HBBBBHQ", 0xA15E, 16, 4, 1, 1, 0, 16 + len(body))
    with pytest.raises(ConfigError, match="decompresses past"):
        from_bytes(header + body)


def _rows_of(residues):
    meta, data = residues
    size, levels, n = data.shape
    return np.stack([np.stack([data[s, lv, 0:n] for lv in range(levels)]) for s in range(size)])


def test_packed_rows_read_what_the_whole_parse_reads(bfv):
    """Row by row from the packed bytes (the server's first stage): the same residues as the whole parse."""
    from secquant.backends.seal.ciphertext import PackedRows, pack, read_fresh, read_fresh_rows

    blob = _save(_encrypt(bfv, list(range(4096))), bfv["path"])
    first, moduli = list(bfv["ctx"].first_parms_id()), bfv["moduli"]
    meta, whole = read_fresh(blob, first, moduli, False, "ct")
    lazy_meta, rows = read_fresh_rows(pack(blob), first, moduli, False, "ct")
    assert isinstance(rows, PackedRows) and lazy_meta == meta and rows.shape == whole.shape
    np.testing.assert_array_equal(_rows_of((meta, rows)), whole)
    np.testing.assert_array_equal(rows[1, 0, 5:9], whole[1, 0, 5:9])  # any row again, any columns
    unpacked = read_fresh_rows(blob, first, moduli, False, "ct")[1]  # SEAL's own bytes: parsed whole
    assert isinstance(unpacked, np.ndarray)


def test_packed_rows_refuse_what_seal_would(bfv):
    from secquant.backends.seal.ciphertext import pack, read_fresh_rows

    first, moduli = list(bfv["ctx"].first_parms_id()), bfv["moduli"]
    meta, data = from_bytes(_save(_encrypt(bfv, [3] * 4096), bfv["path"]))
    with pytest.raises(ConfigError, match="seeded"):
        read_fresh_rows(pack(_save(_encrypt(bfv, [1] * 4096, seeded=True), bfv["path"])), first, moduli, False, "ct")
    with pytest.raises(ConfigError, match="fresh"):
        read_fresh_rows(pack(to_bytes(meta, data.copy())), first, moduli, True, "ct")
    packed = pack(to_bytes(meta, data.copy()))
    for cut in (packed[:60], packed[:-100]):
        with pytest.raises(ConfigError, match="truncated|impossible"):
            read_fresh_rows(cut, first, moduli, False, "ct")
    bad = data.copy()
    bad[1, 0, 7] = moduli[0]  # as wide as the prime, but not below it: found when row (1, 0) is read
    _, rows = read_fresh_rows(pack(to_bytes(meta, bad)), first, moduli, False, "ct")
    rows[0, 0, 0:4]
    with pytest.raises(ConfigError, match="at or above its prime"):
        rows[1, 0, 0:4]
    wide = data.copy()
    wide[0, 1, 3] = (1 << 62) + 5  # wider than any prime: refused before any row is read
    with pytest.raises(ConfigError, match="at or above its prime"):
        read_fresh_rows(pack(to_bytes(meta, wide)), first, moduli, False, "ct")
