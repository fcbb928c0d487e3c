"""The CKKS backend: the integer model evaluated approximately, with a stated error bound.

Modules by responsibility:

* :mod:`.backend`: :class:`CKKSBackend` (``secquant.compile(qm, "ckks")``), the
  roles :mod:`.client` (secret key) and :mod:`.server` (evaluation keys only),
  their messages :mod:`.wire`;
* :mod:`.options`: :class:`CKKSOptions`, what a user may choose;
* :mod:`.stages`: the model's stages with the bounds CKKS scales by;
* :mod:`.params`: parameter choice (N, modulus chain, scales; :mod:`.chain`
  for chains whose affine stages cost no level), :mod:`.noise`: the error
  bound, :mod:`.layout`: LATENCY slot layouts, :mod:`.plan`: the result,
  :mod:`.client_plan`: the client's view of it;
* :mod:`.evaluate`: the plan on SEAL ciphertexts (:mod:`.evaluate_latency`: its LATENCY affine stages).

Everything loads lazily; TenSEAL only when keys or ciphertexts are made.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["CKKSBackend", "CKKSClient", "CKKSClientPlan", "CKKSOptions", "CKKSPlan", "CKKSServer", "make_plan"]

__getattr__ = lazy_getattr(__name__, {
    "CKKSBackend": ".backend", "CKKSClient": ".client", "CKKSClientPlan": ".client_plan",
    "CKKSOptions": ".options", "CKKSPlan": ".plan", "CKKSServer": ".server", "make_plan": ".params",
})
