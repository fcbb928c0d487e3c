"""The BFV backend: exact integer inference mod t, CRT past one 60-bit prime.

Modules by responsibility:

* :mod:`.backend`: :class:`BFVBackend` (``secquant.compile(qm, "bfv")``), the
  roles :mod:`.client` (secret keys, the one checked decryption) and
  :mod:`.server` (evaluation keys only), their messages :mod:`.wire`;
* :mod:`.options`: :class:`BFVOptions`, what a user may choose;
* :mod:`.plan`: the model as affine, square and poly stages (exact integers);
  :mod:`.requantize`: the refusal of requantized models (:class:`RequantizedModelError`);
* :mod:`.params`: parameter choice (CRT primes, N, modulus chain),
  :mod:`.noise`: the noise-budget estimate, :mod:`.layout`: latency-mode slot
  layout, :mod:`.client_params`: the client's view of the parameters;
* :mod:`.evaluate`: the plan on SEAL ciphertexts, per prime (:mod:`.kit`,
  :mod:`.throughput`, :mod:`.latency`).

Everything loads lazily; TenSEAL only when keys or ciphertexts are made.
"""

from __future__ import annotations

from secquant._lazy import lazy_getattr

__all__ = ["BFVBackend", "BFVClient", "BFVClientParams", "BFVOptions", "BFVParameters", "BFVServer",
           "RequantizedModelError", "choose_parameters"]

__getattr__ = lazy_getattr(__name__, {
    "BFVBackend": ".backend", "BFVClient": ".client", "BFVClientParams": ".client_params",
    "BFVOptions": ".options", "BFVParameters": ".params", "BFVServer": ".server",
    "RequantizedModelError": ".requantize",
    "choose_parameters": ".params",
})
