"""Two input features per slot (THROUGHPUT): half the request ciphertexts, one conjugation per first-stage output.

A THROUGHPUT request holds one ciphertext per input feature, each slot one
input.  A CKKS slot is a complex number, so the client can pack two features
in it and send half as many ciphertexts (``CKKSOptions.complex_packing``).

The client encodes, for features ``x = x_{2g}`` and ``x' = x_{2g+1}`` and every
slot ``j``, the value ``z_j = x_j + σ_j·x'_j`` at half the input scale, where
``σ_j = i·(-1)**j`` is the value of the monomial ``X**(N/2)`` at slot j (SEAL
puts slot j at the root ``ζ**(3**j)``, and ``ζ**(3**j·N/2) = i**(3**j)``).
Then ``Re(z) = x`` and ``Re(-X**(N/2)·z) = x'``.

The server's first stage has integer weights at scale 1 (an exact
:class:`~secquant.backends.seal.rns.IntegerMap`).  It maps the ``z`` with the
stacked matrix ``[W[:, 0::2]; -W[:, 1::2]]`` (:func:`pair_matrix`) into ``U``
and ``V``, forms ``y = U + X**(N/2)·V`` per output (a product with the exact
plaintext of that monomial), and keeps the real part: ``y + conj(y)`` (one key
switch with the Galois key of ``2N - 1``), relabelled at twice the request
scale.  Since ``Re(y) = W x``, the result is the first stage of the real
layout, with at most twice its error plus one key switch's
(:func:`~secquant.backends.ckks.noise.propagate` charges both).  The server
loads half as many inputs as with one feature per slot, and pays one plaintext
product and one conjugation per first-stage output.

A client gains nothing by filling slots with other complex values: for any
``z = u + i·v``, ``Re(z) = u`` and ``Re(-X**(N/2)·z) = (-1)**j·v``, so the
server computes what the honest real inputs ``(u, (-1)**j·v)`` give, and the
real part it keeps leaves no imaginary trace in the response.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Mode
from secquant.backends.ckks.options import CKKSOptions

__all__ = ["conjugation_element", "pair_matrix", "pair_slots", "paired", "real_part", "request_ciphertexts",
           "slot_signs"]


def paired(options: CKKSOptions, first_free: bool) -> bool:
    """Whether a plan packs two features per slot: asked for, THROUGHPUT, and a first stage at scale 1."""
    return bool(options.complex_packing) and options.mode is Mode.THROUGHPUT and first_free


def request_ciphertexts(features: int, pairs: bool) -> int:
    """Request ciphertexts per batch: one per feature, or one per pair of features (the last may be alone)."""
    return -(-features // 2) if pairs else features


def slot_signs(slots: int) -> NDArray[np.complex128]:
    """``σ_j = i·(-1)**j``: the value of ``X**(N/2)`` at slot j in SEAL's slot order (N/2 = ``slots``)."""
    return (1j * (1.0 - 2.0 * (np.arange(slots) % 2))).astype(np.complex128)


def conjugation_element(poly_degree: int) -> int:
    """The Galois element of complex conjugation, ``2N - 1``."""
    return 2 * poly_degree - 1


def pair_slots(chunk: NDArray[Any], slots: int) -> list[NDArray[np.complex128]]:
    """The slot vectors of one batch: ``x_{2g} + σ·x_{2g+1}`` per pair of features.

    Args:
        chunk: (inputs, features) integers, at most ``slots`` inputs.
        slots: N/2.
    """
    sigma = slot_signs(slots)[:chunk.shape[0]]
    cols = chunk.astype(np.float64)
    out = []
    for g in range(0, cols.shape[1], 2):
        z = cols[:, g].astype(np.complex128)
        if g + 1 < cols.shape[1]:
            z = z + sigma * cols[:, g + 1]
        out.append(z)
    return out


def pair_matrix(weights: NDArray[np.int64]) -> NDArray[np.int64]:
    """The paired first stage's integer map over ``[z_0, z_1, ...]``: ``(2m, ceil(k/2))``, rows ``W[:, 0::2]``
    (giving ``U``) over rows ``-W[:, 1::2]`` (giving ``V``; zero for the missing partner of an odd last
    feature), so that ``Re(U + X**(N/2)·V) = W x``."""
    m, k = weights.shape
    out = np.zeros((2 * m, -(-k // 2)), dtype=np.int64)
    out[:m] = weights[:, 0::2]
    out[m:, :k // 2] = -weights[:, 1::2]
    return out


def real_part(evaluator: Any, ct: Any, galois_keys: Any, scale: float) -> None:
    """``ct <- ct + conj(ct)``, relabelled at ``scale`` (twice its own): the real part of its slots, in place.

    Args:
        evaluator: A SEAL ``Evaluator``.
        ct: A CKKS ciphertext at scale ``scale / 2``.
        galois_keys: Keys holding :func:`conjugation_element`.
        scale: The result's scale.
    """
    conj = type(ct)()
    evaluator.complex_conjugate(ct, galois_keys, conj)
    evaluator.add_inplace(ct, conj)
    ct.scale = scale
