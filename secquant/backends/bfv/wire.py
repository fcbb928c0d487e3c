"""BFV messages: transport frames (magic ``SQBFV1``) holding every CRT prime's ciphertexts in turn.

The JSON header names the mode, N, the plaintext primes, the inputs and the
ciphertexts per prime; :func:`unframe_primes` refuses a payload made under
other parameters before any SEAL object is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from secquant.backends.base import Mode
from secquant.backends.seal.wire import BFV_MAGIC, FrameWriter, frame, unframe
from secquant.errors import ConfigError

__all__ = ["BATCH", "PUBLIC", "RESULT", "frame_primes", "merge_results", "prime_writer", "split_batches",
           "unframe_primes"]

#: Artifact type of the public material.
PUBLIC = "secquant.BFVPublic"
#: Frame kinds.
BATCH, RESULT = "batch", "result"


class _Ring(Protocol):
    """What a frame header names: :class:`~.params.BFVParameters` and :class:`~.client_params.BFVClientParams`."""

    @property
    def mode(self) -> Mode: ...

    @property
    def poly_degree(self) -> int: ...

    @property
    def plain_moduli(self) -> tuple[int, ...]: ...


def _meta(params: _Ring, n: int, per_prime: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"mode": params.mode.value, "n": int(n), "poly_degree": params.poly_degree,
            "plain_moduli": [str(t) for t in params.plain_moduli], "per_prime": int(per_prime), **(extra or {})}


def frame_primes(kind: str, params: _Ring, n: int, blobs: list[list[bytes]],
                 extra: dict[str, Any] | None = None) -> bytes:
    """A frame of ``n`` inputs: a JSON header, then each prime's ciphertexts in turn."""
    meta = _meta(params, n, len(blobs[0]) if blobs else 0, extra)
    return frame(kind, meta, [b for per_prime in blobs for b in per_prime], BFV_MAGIC)


def prime_writer(kind: str, params: _Ring, n: int, per_prime: int, extra: dict[str, Any] | None = None,
                 blob_bound: int | None = None) -> FrameWriter:
    """The frame of :func:`frame_primes`, written ciphertext by ciphertext (prime after prime);
    ``blob_bound``: an upper bound on one ciphertext's bytes, when known."""
    count = per_prime * len(params.plain_moduli)
    return FrameWriter(kind, _meta(params, n, per_prime, extra), count, BFV_MAGIC,
                       None if blob_bound is None else count * blob_bound)


def _check_ring(meta: dict[str, Any], params: _Ring) -> tuple[int, int]:
    """``(per_prime, n)`` of a header made under ``params``'s ring.

    Raises:
        ConfigError: another mode, N or plaintext primes, or a malformed header.
    """
    try:
        per, n = int(meta["per_prime"]), int(meta["n"])
        if meta["mode"] != params.mode.value or int(meta["poly_degree"]) != params.poly_degree:
            raise ConfigError(f"payload was made for mode {meta['mode']}, N={meta['poly_degree']}; "
                              f"this model uses {params.mode.value}, N={params.poly_degree}")
        if [int(t) for t in meta["plain_moduli"]] != list(params.plain_moduli):
            raise ConfigError("payload was made under other plaintext primes")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"malformed BFV payload: {exc!r}") from exc
    return per, n


def unframe_primes(kind: str, payload: bytes, params: _Ring) -> tuple[dict[str, Any], list[list[memoryview]]]:
    """The header and, per prime, the views of its ciphertexts.

    Raises:
        ConfigError: malformed, another kind, or made under other parameters.
    """
    meta, flat = unframe(payload, kind, BFV_MAGIC)
    per, n = _check_ring(meta, params)
    k = len(params.plain_moduli)
    if n < 0 or per < 0 or len(flat) != k * per:
        raise ConfigError(f"malformed BFV payload: {len(flat)} ciphertexts, expected {k} primes x {per}")
    return meta, [flat[i * per:(i + 1) * per] for i in range(k)]


def split_batches(payload: bytes, features: int, slots: int) -> tuple[int, Iterator[bytes]]:
    """A THROUGHPUT request of B slot batches as B requests of one batch each, made one at a time.

    Returns ``(B, parts)``; ``(1, [payload])`` when the request holds one batch or does
    not have the shape its header claims (the server role then refuses it whole,
    with its own error).

    Args:
        payload: A request frame.
        features: Input features of the model (ciphertexts per batch and prime).
        slots: Inputs per batch (N).
    """
    try:
        meta, flat = unframe(payload, BATCH, BFV_MAGIC)
        n, per, batches, k = int(meta["n"]), int(meta["per_prime"]), int(meta["batches"]), len(meta["plain_moduli"])
    except (ConfigError, KeyError, TypeError, ValueError):
        return 1, iter([payload])
    if (meta.get("mode") != Mode.THROUGHPUT.value or batches < 2 or per != batches * features
            or len(flat) != k * per or not (batches - 1) * slots < n <= batches * slots):
        return 1, iter([payload])

    def parts() -> Iterator[bytes]:
        for b in range(batches):
            blobs = [x for i in range(k) for x in flat[i * per + b * features:i * per + (b + 1) * features]]
            yield frame(BATCH, dict(meta, n=min(slots, n - b * slots), per_prime=features, batches=1), blobs,
                        BFV_MAGIC)

    return batches, parts()


def merge_results(results: list[bytes]) -> bytes:
    """One result frame of the results of :func:`split_batches`'s parts, in order: what the whole
    request would have been answered with.

    Raises:
        ConfigError: results that do not belong together.
    """
    if len(results) == 1:
        return results[0]
    framed = [unframe(r, RESULT, BFV_MAGIC) for r in results]
    metas = [m for m, _ in framed]
    k = len(metas[0].get("plain_moduli", []))
    pers = [int(m["per_prime"]) for m in metas]
    if k < 1 or any(len(f) != k * p for (_, f), p in zip(framed, pers)):
        raise ConfigError("the results of a split request do not belong together")
    blobs = [x for i in range(k) for (_, f), p in zip(framed, pers) for x in f[i * p:(i + 1) * p]]
    meta = dict(metas[0], n=sum(int(m["n"]) for m in metas), per_prime=sum(pers),
                batches=sum(int(m.get("batches", 1)) for m in metas))
    return frame(RESULT, meta, blobs, BFV_MAGIC)
