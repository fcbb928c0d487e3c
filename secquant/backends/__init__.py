"""Encrypted evaluation of a quantized model: ``compile`` and one package per scheme.

* :mod:`.compile`: :func:`compile`, :class:`EncryptedModel` and the backend
  registry; :mod:`.base`: the contract every backend fulfils (roles, client
  specs, typed options); :mod:`.plain`: the unencrypted reference;
  :mod:`.parallel`: whole batches in forked workers.
* :mod:`.bfv`, :mod:`.ckks`, :mod:`.paillier`: one package per scheme, each
  with its typed options (:class:`BFVOptions`, :class:`CKKSOptions`,
  :class:`PaillierOptions`); :mod:`.seal`: the SEAL layer BFV and CKKS share.

Every backend lowers the model through :func:`secquant.quant.lowering.lower`.
Names load lazily: TenSEAL and gmpy2 only when a scheme is compiled.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["BFVOptions", "Backend", "CKKSOptions", "Mode", "NoOptions", "PaillierOptions", "Scheme"]

# ``compile`` is also a submodule: read the function as ``secquant.compile``.
__getattr__ = lazy_getattr(__name__, {
    "BFVOptions": ".bfv.options", "Backend": ".base", "CKKSOptions": ".ckks.options", "Mode": ".base",
    "NoOptions": ".base", "PaillierOptions": ".paillier.options", "Scheme": ".base",
})
