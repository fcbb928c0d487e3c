"""The Paillier backend: exact integer inference on additively encrypted inputs.

Modules by responsibility:

* :mod:`.backend`: :class:`PaillierBackend` (``secquant.compile(qm, "paillier")``),
  its roles :mod:`.client` (the key owner, :class:`PaillierClientSpec`) and
  :mod:`.server` (public key only), their messages :mod:`.wire`;
* :mod:`.options`: :class:`PaillierOptions`, what a user may choose;
* :mod:`.plan`: the model as server rounds (the affine stages of
  :func:`secquant.quant.lowering.lower`) and client steps;
* :mod:`.keys`: key generation, storage and loading (:func:`generate_keypair`,
  :func:`load_public_key`, ...); :mod:`.crypto`: the arithmetic
  (:class:`Randomness`, :func:`fresh_randomizer`, :class:`Decryptor`, ...);
  :mod:`.packing`: slot packing (:class:`PackingLayout`).

Everything loads lazily; gmpy2 only when keys or ciphertexts are made.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["PackingLayout", "PaillierBackend", "PaillierClient", "PaillierClientSpec", "PaillierOptions",
           "PaillierPrivateKey", "PaillierPublicKey", "PaillierServer", "Randomness", "generate_keypair",
           "load_public_key"]

__getattr__ = lazy_getattr(__name__, {
    "PackingLayout": ".packing", "PaillierBackend": ".backend", "PaillierClient": ".client",
    "PaillierClientSpec": ".client", "PaillierOptions": ".options", "PaillierPrivateKey": ".keys",
    "PaillierPublicKey": ".keys", "PaillierServer": ".server", "Randomness": ".crypto",
    "generate_keypair": ".keys", "load_public_key": ".keys",
})
