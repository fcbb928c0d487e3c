"""CKKS messages: frame kinds (magic ``SQCKKS1``), the public-material parts, the parameter fingerprint.

Every frame carries the plan's fingerprint, so a payload made under other
parameters (N, primes, mode, rotations, stages) is refused before any SEAL
object is built.
"""

from __future__ import annotations

import hashlib
import json

from secquant.backends.ckks.plan import CKKSPlan

__all__ = ["BATCH", "MATERIAL", "PUBLIC_PARTS", "RESULT", "fingerprint"]

#: Frame kinds.
MATERIAL, BATCH, RESULT = "public material", "batch", "result"
#: The only parts public material may carry.
PUBLIC_PARTS = ("public_key", "relin_keys", "galois_keys")


def fingerprint(plan: CKKSPlan) -> str:
    """SHA-256 of the parameters both roles must agree on."""
    desc = {"n": plan.poly_degree, "primes": [str(p) for p in plan.primes], "mode": plan.options.mode.value,
            "steps": list(plan.galois_steps), "stages": len(plan.stages)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()
