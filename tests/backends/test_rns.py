"""Integer maps on RNS residues: exact against Python integers and bit-identical to SEAL."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secquant.backends.seal.rns import IntegerMap, chunk_bits
from secquant.errors import ParameterError

# NTT-friendly primes of 20, 40, 52, 59 and 60 bits (SEAL picks primes of this kind).
PRIMES = [786433, 1099511480321, 4503599626321921, 576460752303292417, 1152921504606584833]


def _reference(w: np.ndarray, xs: list[np.ndarray], moduli: list[int]) -> list[np.ndarray]:
    """sum_j W_ij x_j mod q_l with Python integers."""
    out = []
    for row in w.astype(object):
        acc = np.zeros(xs[0].shape, dtype=object)
        for wij, x in zip(row, xs):
            acc = acc + int(wij) * x.astype(object)
        for l, q in enumerate(moduli):
            acc[:, l, :] = acc[:, l, :] % q
        out.append(acc.astype(np.uint64))
    return out


def _residues(rng: np.random.Generator, k: int, moduli: list[int], n: int) -> list[np.ndarray]:
    return [np.stack([rng.integers(0, q, size=(2, n), dtype=np.uint64) for q in moduli], axis=1) for _ in range(k)]


@settings(max_examples=25, deadline=None, derandomize=True)  # reproducible: the same 25 cases every run
@given(m=st.integers(1, 6), k=st.integers(1, 12), n=st.sampled_from([1, 7, 64]),
       wmax=st.sampled_from([1, 127, 2**20, 2**40]), seed=st.integers(0, 2**32 - 1),
       levels=st.integers(1, 3))
def test_integer_map_is_exact(m, k, n, wmax, seed, levels):
    rng = np.random.default_rng(seed)
    moduli = [PRIMES[i] for i in rng.choice(len(PRIMES), size=levels, replace=False)]
    w = rng.integers(-wmax, wmax + 1, size=(m, k))
    w[rng.random((m, k)) < 0.3] = 0
    xs = _residues(rng, k, moduli, n)
    got = IntegerMap(w).apply(xs, moduli)
    want = _reference(w, xs, moduli)
    for i in range(m):
        if np.any(w[i]):
            assert np.array_equal(got[i], want[i])
        else:
            assert got[i] is None


def test_sparse_rows_are_grouped_and_exact():
    """A convolution-like matrix (each output reads its own window) takes the grouped path."""
    rng = np.random.default_rng(1)
    m, k, window = 24, 60, 5
    w = np.zeros((m, k), dtype=np.int64)
    for i in range(m):
        start = (i // 4) * 10
        w[i, start:start + window] = rng.integers(-127, 128, size=window)
    imap = IntegerMap(w)
    assert len(imap.groups) > 1
    moduli = PRIMES[2:4]
    xs = _residues(rng, k, moduli, 33)
    got = imap.apply(xs, moduli)
    for a, b in zip(got, _reference(w, xs, moduli)):
        assert np.array_equal(a, b)


def test_chunks_keep_sums_below_2_to_53():
    assert chunk_bits(1, 60) == 50
    assert chunk_bits(2**11, 60) == 41
    assert chunk_bits(100, 20) == 20
    with pytest.raises(ParameterError):
        chunk_bits(2**53, 60)


def test_bad_weights_and_shapes_are_refused():
    with pytest.raises(ParameterError, match="integers below 2\\*\\*53"):
        IntegerMap(np.array([[0.5, 1.0]]))
    with pytest.raises(ParameterError, match="integers below 2\\*\\*53"):
        IntegerMap(np.array([[2**60]], dtype=object))
    with pytest.raises(ParameterError, match="2-d"):
        IntegerMap(np.arange(3))
    imap = IntegerMap(np.array([[1, 2]]))
    x = np.zeros((2, 1, 4), dtype=np.uint64)
    with pytest.raises(ParameterError, match="applied to 1 inputs"):
        imap.apply([x], [PRIMES[0]])
    with pytest.raises(ParameterError, match="level"):
        imap.apply([x, x], [PRIMES[0], PRIMES[1]])


def _seal_ckks(n: int = 4096):
    sa = pytest.importorskip("tenseal.sealapi")
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(n, [35, 30, 35]))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
    return sa, ctx


def _encrypt_rows(sa, ctx, enc, encoder, values):
    """One CKKS ciphertext per row of ``values``, at scale 2**25 on the top level."""
    cts = []
    for row in values:
        pt, ct = sa.Plaintext(), sa.Ciphertext()
        encoder.encode(row.tolist(), ctx.first_parms_id(), 2.0**25, pt)
        enc.encrypt_symmetric(pt, ct)
        cts.append(ct)
    return cts


def test_bit_identical_to_seal_multiply_plain_and_add(tmp_path):
    """What the CKKS/BFV evaluators rely on: the map equals SEAL's own constant products and sums."""
    from secquant.backends.seal.ciphertext import from_bytes, to_bytes

    sa, ctx = _seal_ckks()
    keygen = sa.KeyGenerator(ctx)
    enc, ev, encoder = sa.Encryptor(ctx, keygen.secret_key()), sa.Evaluator(ctx), sa.CKKSEncoder(ctx)
    dec = sa.Decryptor(ctx, keygen.secret_key())
    rng = np.random.default_rng(2)
    k, m = 6, 3
    values = rng.integers(-50, 50, size=(k, 2048)).astype(float)
    path = str(tmp_path / "ct")

    def save(ct):
        ct.save(path)
        with open(path, "rb") as fh:
            return fh.read()

    cts = _encrypt_rows(sa, ctx, enc, encoder, values)
    w = rng.integers(-9, 10, size=(m, k))
    parsed = [from_bytes(save(ct)) for ct in cts]
    moduli = [int(q.value()) for q in ctx.first_context_data().parms().coeff_modulus()]
    got = IntegerMap(w).apply([d for _, d in parsed], moduli)
    for i in range(m):
        acc, tmp = None, sa.Ciphertext()
        for j in np.flatnonzero(w[i]):
            pt = sa.Plaintext()
            encoder.encode(float(w[i, j]), ctx.first_parms_id(), 1.0, pt)
            if acc is None:
                acc = sa.Ciphertext()
                ev.multiply_plain(cts[j], pt, acc)
            else:
                ev.multiply_plain(cts[j], pt, tmp)
                ev.add_inplace(acc, tmp)
        assert np.array_equal(got[i], from_bytes(save(acc))[1])
        with open(path, "wb") as fh:
            fh.write(to_bytes(parsed[0][0], got[i]))
        back = sa.Ciphertext(ctx)
        back.load(ctx, path)
        pt = sa.Plaintext()
        dec.decrypt(back, pt)
        assert np.max(np.abs(np.array(encoder.decode_double(pt)) - w[i] @ values)) < 1e-2


def test_map_ciphertexts_consumes_its_inputs_only_when_asked(tmp_path):
    """``consume=True`` empties the input list (so a throughput batch's inputs can be freed before the outputs
    are loaded); the outputs are the same either way and decrypt to ``W @ values``."""
    from secquant.backends.seal.ciphertext import from_bytes
    from secquant.backends.seal.rns import map_ciphertexts

    sa, ctx = _seal_ckks()
    keygen = sa.KeyGenerator(ctx)
    enc, encoder, dec = sa.Encryptor(ctx, keygen.secret_key()), sa.CKKSEncoder(ctx), sa.Decryptor(ctx, keygen.secret_key())
    rng = np.random.default_rng(3)
    values = rng.integers(-50, 50, size=(4, 2048)).astype(float)
    w = rng.integers(-9, 10, size=(3, 4))
    cts = _encrypt_rows(sa, ctx, enc, encoder, values)
    moduli = {tuple(ctx.first_parms_id()): [int(q.value()) for q in ctx.first_context_data().parms().coeff_modulus()]}
    kept, taken = list(cts), list(cts)
    a = map_ciphertexts(IntegerMap(w), kept, ctx, moduli, lambda meta: None)
    b = map_ciphertexts(IntegerMap(w), taken, ctx, moduli, lambda meta: None, consume=True)
    assert len(kept) == 4 and taken == []
    path = str(tmp_path / "ct")
    for x, y, want in zip(a, b, w @ values):
        x.save(path)
        with open(path, "rb") as fh:
            rx = from_bytes(fh.read())[1]
        y.save(path)
        with open(path, "rb") as fh:
            ry = from_bytes(fh.read())[1]
        assert np.array_equal(rx, ry)
        pt = sa.Plaintext()
        dec.decrypt(y, pt)
        assert np.max(np.abs(np.array(encoder.decode_double(pt)) - want)) < 1e-2
