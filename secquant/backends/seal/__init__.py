"""The SEAL layer shared by the BFV and CKKS backends.

* :mod:`.context`: the one SEAL context builder (refused parameters raise
  :class:`~secquant.errors.ParameterError`), SEAL's coefficient primes, the
  modulus-switching chain of a context;
* :mod:`.serialize`: the one serializer (SEAL objects <-> bytes through a
  private 0700 scratch directory, 0600 files named per process);
* :mod:`.ciphertext`: ciphertext bytes <-> numpy residues; :mod:`.wire`:
  transport frames of many blobs; :mod:`.rns`: exact integer maps on residues;
* :mod:`.primes`: primality, NTT-friendly primes, CRT, Galois elements;
* :mod:`.layout`: slot layouts (baby-step giant-step diagonals, client
  gathering, tiling, next power of two); :mod:`.gather`: a gathered
  convolution whose channels share each patch (CKKS); :mod:`.security`: the
  HomomorphicEncryption.org security table.

TenSEAL is imported on first use only (:func:`~.context.sealapi`).
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

_LAZY = {
    "make_context": ".context", "coeff_primes": ".context", "levels": ".context", "sealapi": ".context",
    "SealScheme": ".context", "Scratch": ".serialize", "save_seal": ".serialize", "load_seal": ".serialize",
    "frame": ".wire", "unframe": ".wire", "IntegerMap": ".rns", "map_ciphertexts": ".rns",
    "BSGSLayout": ".layout", "GatherLayout": ".layout", "next_pow2": ".layout",
    "max_coeff_modulus_bits": ".security", "estimate_security": ".security",
}

__all__ = ["BSGSLayout", "GatherLayout", "IntegerMap", "Scratch", "SealScheme", "coeff_primes",
           "estimate_security", "frame", "levels", "load_seal", "make_context", "map_ciphertexts",
           "max_coeff_modulus_bits", "next_pow2", "save_seal", "sealapi", "unframe"]

__getattr__ = lazy_getattr(__name__, {k: f"secquant.backends.seal{v}" for k, v in _LAZY.items()})
