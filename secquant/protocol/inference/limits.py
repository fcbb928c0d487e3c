"""Limits enforced on what a request carries, not on what it declares.

* :func:`payload_inputs` reads the number of inputs from the backend payload's
  own header (the count the backend will evaluate, whose ciphertext count the
  backend checks against it) and refuses a payload that hides extra batches;
  the route then refuses a mismatch with the frame's declared ``batch`` (400).
  It also returns the inputs to *charge*: in SEAL throughput mode a client
  can fill every slot of a batch with its own inputs and the server cannot see
  which slots are used, so a batch costs its whole capacity.
* :func:`body_limits` derives the default body limits from the compiled
  model's batch geometry: an evaluate request of ``max_batch`` inputs (any
  round), and the session material, each with 25 % + 64 KiB of slack.  The
  evaluate limit stays below the former fixed 256 MiB: when ``max_batch``
  inputs need more, ``max_batch`` is lowered instead (a latency-mode CKKS
  input is about half a megabyte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from secquant.errors import ArtifactError, ConfigError
from secquant.protocol.errors import CiphertextError, MessageError

__all__ = ["BodyLimits", "PayloadCount", "body_limits", "payload_inputs", "throughput"]

_SLACK, _FIXED = 1.25, 64 * 1024


@dataclass(frozen=True)
class PayloadCount:
    """Inputs a payload carries.

    Attributes:
        inputs: Inputs the backend evaluates (must equal the declared batch).
        charged: Inputs charged to the token's query budget (>= inputs).
        final: Whether the request's results are final outputs (released under the
            release policy); False for the intermediate rounds of interactive Paillier.
    """

    inputs: int
    charged: int
    final: bool = True


@dataclass(frozen=True)
class BodyLimits:
    """Largest bodies the service reads.

    Attributes:
        evaluate: An ``EvaluateRequest`` frame of ``max_batch`` inputs.
        material: A ``SessionCreate`` frame (public and evaluation keys).
        max_batch: Inputs per request these limits are sized for.
    """

    evaluate: int
    material: int
    max_batch: int = 1


def _header_int(meta: dict[str, Any], key: str, what: str) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CiphertextError(f"malformed {what} payload: its header needs a non-negative int {key!r}, "
                              f"got {str(value)[:40]!r}")
    return value


def throughput(binding: Any) -> bool:
    """Whether ``binding`` serves BFV or CKKS in THROUGHPUT mode (one slot per input, whole slot batches)."""
    from secquant.backends.base import Mode

    if binding.scheme not in ("bfv", "ckks"):
        return False
    backend = binding.em.backend
    return (backend.params.mode if binding.scheme == "bfv" else backend.plan.options.mode) is Mode.THROUGHPUT


def _seal_count(binding: Any, payload: bytes) -> PayloadCount:
    from secquant.backends.seal.wire import BFV_MAGIC, CKKS_MAGIC, unframe

    bfv = binding.scheme == "bfv"
    try:
        meta, _ = unframe(payload, "batch", BFV_MAGIC if bfv else CKKS_MAGIC)
    except ConfigError as exc:
        raise CiphertextError(str(exc)) from None
    n = _header_int(meta, "n", binding.scheme.upper())
    backend = binding.em.backend
    if not throughput(binding):
        return PayloadCount(n, n)
    slots = int(backend.params.poly_degree if bfv else backend.plan.slots)
    batches = -(-n // slots)
    if bfv and _header_int(meta, "batches", "BFV") != batches:
        raise MessageError(f"BFV payload declares {n} inputs but carries {meta.get('batches')} slot batches "
                           f"(expected {batches}); refusing inputs hidden in extra batches")
    return PayloadCount(n, batches * slots)


def _paillier_count(binding: Any, payload: bytes) -> PayloadCount:
    from secquant.artifact import read_artifact
    from secquant.backends.paillier.wire import REQUEST_TYPE

    try:
        _, meta, _ = read_artifact(payload, REQUEST_TYPE)
    except ArtifactError as exc:
        raise CiphertextError(f"malformed Paillier request: {exc}") from None
    batch, rnd = _header_int(meta, "batch", "Paillier"), _header_int(meta, "round", "Paillier")
    return PayloadCount(batch, batch, final=rnd == binding.em.backend.plan.rounds - 1)


def _plain_count(payload: bytes) -> PayloadCount:
    from secquant.artifact import read_artifact

    try:
        _, _, arrays = read_artifact(payload, "secquant.PlainBatch")
    except ArtifactError as exc:
        raise CiphertextError(f"malformed plain batch: {exc}") from None
    values = arrays.get("values")
    if values is None or values.ndim < 1:
        raise CiphertextError("malformed plain batch: it lacks its values")
    return PayloadCount(int(values.shape[0]), int(values.shape[0]))


def payload_inputs(binding: Any, payload: bytes) -> PayloadCount:
    """The inputs an evaluate payload carries, read from the backend's own header.

    Raises:
        CiphertextError: the backend header is unreadable (422, as when the backend chokes).
        MessageError: a BFV throughput payload with more slot batches than its input count needs.
    """
    if binding.scheme in ("bfv", "ckks"):
        return _seal_count(binding, payload)
    if binding.scheme == "paillier":
        return _paillier_count(binding, payload)
    return _plain_count(payload)


def _slack(n: float) -> int:
    return math.ceil(n * _SLACK) + _FIXED


#: The derived evaluate limit never exceeds this (the former fixed default), unless a single
#: indivisible unit (one throughput slot batch) needs more; ``max_batch`` is lowered to fit instead.
DEFAULT_BODY_CAP = 256 * 2**20


def _evaluate_bytes(binding: Any, params: dict[str, Any], n: int) -> int:
    """Bytes of the largest evaluate payload for ``n`` inputs (any round), before slack."""
    scheme, qm = binding.scheme, binding.qm
    if scheme == "paillier":
        return n * max(r["request_bytes_per_input"] for r in params["round_details"])
    if scheme == "bfv":
        p = binding.em.backend.params
        if params["mode"] == "throughput":  # whole ciphertexts (the server reads their residues), d_in per batch
            per_batch, cts, ct_bytes = p.poly_degree, int(math.prod(qm.input_shape)), params["ciphertext_bytes_evaluated"]
        else:  # seeded ciphertexts: one per two inputs, or the gather chunks per input
            per_batch, cts = (1, p.gather.chunks) if p.gather is not None else (2, 1)
            ct_bytes = params["ciphertext_bytes_uploaded"]
        return -(-n // per_batch) * cts * len(p.plain_moduli) * (ct_bytes + 16)
    if scheme == "ckks":
        sizes = params["sizes_bytes_uncompressed"]
        if "request_ciphertexts_per_batch" in sizes:
            cts = -(-n // binding.em.backend.plan.slots) * sizes["request_ciphertexts_per_batch"]
        else:
            cts = n * sizes["request_ciphertexts_per_input"]
        return cts * (sizes["fresh_ciphertext"] + 16)
    return n * int(math.prod(qm.input_shape)) * (len(str(int(qm.modulus))) + 4)  # decimal big ints in JSON


def _material_bytes(binding: Any, params: dict[str, Any]) -> int:
    if binding.scheme == "paillier":
        return int(params["sizes"]["public_key_bytes"]) + 4096
    if binding.scheme == "bfv":
        return int(params["public_material_bytes"])
    if binding.scheme == "ckks":
        sizes = params["sizes_bytes_uncompressed"]
        return int(sizes["public_key"] + sizes["relin_keys"] + sizes["galois_keys"])
    return len(str(int(binding.qm.modulus))) + 4096


def body_limits(binding: Any, max_batch: int, cap: int = DEFAULT_BODY_CAP) -> BodyLimits:
    """Default body limits for up to ``max_batch`` inputs per request, from the compiled parameters.

    When ``max_batch`` inputs would need more than ``cap`` bytes, the batch is
    lowered to the most inputs that fit (at least one indivisible unit).

    Args:
        binding: The :class:`~secquant.protocol.inference.binding.ModelBinding`.
        max_batch: Most inputs per evaluate request the operator allows.
        cap: Largest derived evaluate limit in bytes.
    """
    params = binding.em.parameters()
    material = _slack(_material_bytes(binding, params))
    if _slack(_evaluate_bytes(binding, params, max_batch)) <= cap:
        return BodyLimits(_slack(_evaluate_bytes(binding, params, max_batch)), material, max_batch)
    lo, hi = 1, max_batch  # the most inputs that fit the cap (need is monotone in n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _slack(_evaluate_bytes(binding, params, mid)) <= cap else (lo, mid - 1)
    return BodyLimits(_slack(_evaluate_bytes(binding, params, lo)), material, lo)
