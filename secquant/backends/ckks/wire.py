"""CKKS messages: frame kinds (magic ``SQCKKS1``), the public-material parts, the parameter fingerprint.

Every frame carries the plan's fingerprint, so a payload made under other
parameters (N, primes, mode, rotations, stages, paired inputs) is refused before any SEAL
object is built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from secquant.backends.ckks.plan import CKKSPlan
from secquant.backends.seal.wire import frame, unframe
from secquant.errors import ConfigError

__all__ = ["BATCH", "MATERIAL", "PUBLIC_PARTS", "RESULT", "fingerprint", "merge_results", "split_batches"]

#: Frame kinds.
MATERIAL, BATCH, RESULT = "public material", "batch", "result"
#: The only parts public material may carry.
PUBLIC_PARTS = ("public_key", "relin_keys", "galois_keys")


def fingerprint(plan: CKKSPlan) -> str:
    """SHA-256 of the parameters both roles must agree on."""
    desc = {"n": plan.poly_degree, "primes": [str(p) for p in plan.primes], "mode": plan.options.mode.value,
            "steps": list(plan.galois_steps), "stages": len(plan.stages)}
    if plan.paired_inputs:
        desc["paired"] = True
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def split_batches(payload: bytes, features: int, slots: int) -> tuple[int, Iterator[bytes]]:
    """A THROUGHPUT request of B slot batches as B requests of one batch each, made one at a time.

    Returns ``(B, parts)``; ``(1, [payload])`` when the request holds one batch or does
    not have the shape its header claims (the server role then refuses it whole).

    Args:
        payload: A request frame.
        features: Input features of the model (ciphertexts per batch).
        slots: Inputs per batch (N/2).
    """
    try:
        meta, flat = unframe(payload, BATCH)
        n = int(meta["n"])
    except (ConfigError, KeyError, TypeError, ValueError):
        return 1, iter([payload])
    batches = len(flat) // features if features > 0 else 0
    if batches < 2 or len(flat) != batches * features or not (batches - 1) * slots < n <= batches * slots:
        return 1, iter([payload])

    def parts() -> Iterator[bytes]:
        for b in range(batches):
            yield frame(BATCH, dict(meta, n=min(slots, n - b * slots)), flat[b * features:(b + 1) * features])

    return batches, parts()


def merge_results(results: list[bytes]) -> bytes:
    """One result frame of the results of :func:`split_batches`'s parts, in order.

    Raises:
        ConfigError: results that do not belong together.
    """
    if len(results) == 1:
        return results[0]
    framed = [unframe(r, RESULT) for r in results]
    if len({m.get("fingerprint") for m, _ in framed}) != 1:
        raise ConfigError("the results of a split request do not belong together")
    meta = dict(framed[0][0], n=sum(int(m["n"]) for m, _ in framed))
    return frame(RESULT, meta, [x for _, f in framed for x in f])
