"""BFV messages: transport frames (magic ``SQBFV1``) holding every CRT prime's ciphertexts in turn.

The JSON header names the mode, N, the plaintext primes, the inputs and the
ciphertexts per prime; :func:`unframe_primes` refuses a payload made under
other parameters before any SEAL object is built.
"""

from __future__ import annotations

from typing import Any, Protocol

from secquant.backends.base import Mode
from secquant.backends.seal.wire import BFV_MAGIC, FrameWriter, frame, unframe
from secquant.errors import ConfigError

__all__ = ["BATCH", "PUBLIC", "RESULT", "frame_primes", "prime_writer", "unframe_primes"]

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


def prime_writer(kind: str, params: _Ring, n: int, per_prime: int,
                 extra: dict[str, Any] | None = None) -> FrameWriter:
    """The frame of :func:`frame_primes`, written ciphertext by ciphertext (prime after prime)."""
    return FrameWriter(kind, _meta(params, n, per_prime, extra), per_prime * len(params.plain_moduli), BFV_MAGIC)


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
