"""The client's view of the BFV parameters: ring, primes and slot layout, never a stage or weight.

:class:`BFVClientParams` is what ``BFVBackend.client_spec()`` publishes next to
the model interface: enough to make keys, pack inputs and unpack results.  In
latency mode with a gathered first stage it holds that stage's sparsity
pattern (the layer's geometry), never a weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Mode
from secquant.backends.bfv.options import POLY_DEGREES, SECURITY_LEVELS
from secquant.backends.bfv.params import BFVParameters
from secquant.backends.seal.ciphertext import FRAME_OVERHEAD, RESPONSE_HEADER, Transfer, packed_size
from secquant.backends.seal.layout import GatherLayout
from secquant.backends.seal.primes import is_prime
from secquant.backends.seal.wire import WRITER_BYTES_PER_BLOB
from secquant.errors import ConfigError

__all__ = ["BFVClientParams"]


@dataclass(frozen=True, eq=False)
class BFVClientParams:
    """The client's view of :class:`BFVParameters`: enough to make keys, pack and unpack; no stage.

    Attributes:
        mode: Slot layout.
        poly_degree: N.
        coeff_bits: Bit sizes of the coefficient primes (special prime last).
        plain_moduli: CRT primes t_i, each = 1 mod 2N.
        security: 128, 192 or 256.
        period: Latency-mode slot period (0 in throughput mode).
        gather: Latency-mode gathering of the first stage (its sparsity pattern only), or None.
        galois: Galois elements the server rotates with (empty in throughput mode).
        transfer: BALANCED and BYTES send packed request ciphertexts, LATENCY SEAL's zstd blobs.
        noise_bound: Largest |noise| the server's release policy adds to an output (0: full logits);
            the client's output check is widened by it.

    Raises:
        ConfigError: a field is out of range.
    """

    mode: Mode
    poly_degree: int
    coeff_bits: tuple[int, ...]
    plain_moduli: tuple[int, ...]
    security: int
    period: int = 0
    gather: GatherLayout | None = field(default=None, repr=False)
    galois: tuple[int, ...] = ()
    transfer: Transfer = Transfer.BALANCED
    noise_bound: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.noise_bound, bool) or not isinstance(self.noise_bound, int) or self.noise_bound < 0:
            raise ConfigError(f"noise_bound must be an int >= 0, got {self.noise_bound!r}")
        if self.poly_degree not in POLY_DEGREES or self.security not in SECURITY_LEVELS:
            raise ConfigError(f"BFV client parameters: N={self.poly_degree}, security={self.security} are not offered")
        if not self.plain_moduli or not self.coeff_bits:
            raise ConfigError("BFV client parameters need plaintext primes and coefficient primes")
        for t in self.plain_moduli:
            if (t - 1) % (2 * self.poly_degree) or not is_prime(t):
                raise ConfigError(f"plain modulus {t} is not a prime = 1 mod 2N={2 * self.poly_degree}")
        if self.mode is Mode.LATENCY and not 0 < self.period <= self.poly_degree // 2:
            raise ConfigError(f"latency mode needs a period in (0, N/2], got {self.period}")

    @property
    def total_plain_modulus(self) -> int:
        """Product of the CRT primes."""
        return math.prod(self.plain_moduli)

    @property
    def inputs_per_ciphertext(self) -> int:
        """Latency mode: 1 with gathering, else 2 (one per row)."""
        return 1 if self.gather is not None else 2

    def wire_bytes(self, output_primes: int = 1, features: int | None = None) -> dict[str, Any]:
        """Request bytes of one input (LATENCY) or one batch (THROUGHPUT), known before any key exists.

        ``features`` (the flattened input size) adds THROUGHPUT's ``request_bytes_per_batch`` (one
        ciphertext per feature per CRT prime, for up to N inputs) and that over N,
        ``request_bytes_per_input_amortized`` (a full batch).

        Per CRT prime, the input ciphertexts are fresh at the top level (every data prime): seeded, except
        THROUGHPUT under ``transfer=LATENCY`` (whole: its server reads the residues); packed
        (:func:`~secquant.backends.seal.ciphertext.pack`) unless ``transfer=LATENCY``, whose zstd
        blobs are about 1.1x the packed size (not modelled exactly).  The response: one ciphertext
        per CRT prime, two polynomials over ``output_primes`` primes, packed too unless LATENCY
        (whose bound is 8 bytes per residue, before compression).
        """
        latency = self.mode is Mode.LATENCY
        one = packed_size(self.poly_degree, list(self.coeff_bits[:-1]), latency or self.transfer is not Transfer.LATENCY)
        per_prime = (self.gather.chunks if self.gather is not None else 1) if latency else None
        out: dict[str, Any] = {"transfer": self.transfer.value, "request_ciphertext_bytes": one,
                               "request_ciphertexts_per_input": per_prime and per_prime * len(self.plain_moduli),
                               "request_format": "packed" if self.transfer is not Transfer.LATENCY
                               else "SEAL zstd (size approximate)"}
        if per_prime is not None:
            count = per_prime * len(self.plain_moduli)
            out["request_bytes_per_input"] = count * one + FRAME_OVERHEAD + WRITER_BYTES_PER_BLOB * count
            if self.transfer is Transfer.LATENCY:
                response = RESPONSE_HEADER + 16 * self.poly_degree * output_primes
            else:
                response = packed_size(self.poly_degree, list(self.coeff_bits[:output_primes]), False) + 8
            out["response_bytes_per_input_max"] = len(self.plain_moduli) * response + FRAME_OVERHEAD
            out["request_bytes_per_batch"] = out["request_bytes_per_input"]
        elif features is not None:
            count = features * len(self.plain_moduli)
            out["request_bytes_per_batch"] = count * one + FRAME_OVERHEAD + WRITER_BYTES_PER_BLOB * count
            out["request_bytes_per_input_amortized"] = out["request_bytes_per_batch"] / self.poly_degree
        return out

    @classmethod
    def of(cls, params: BFVParameters, galois: list[int], transfer: Transfer = Transfer.BALANCED,
           noise_bound: int = 0) -> BFVClientParams:
        """The client view of ``params``; ``galois`` from :func:`~secquant.backends.bfv.evaluate.galois_elements`."""
        lay = params.layout
        return cls(params.mode, params.poly_degree, tuple(params.coeff_bits), tuple(params.plain_moduli),
                   params.security, lay.period if lay else 0, params.gather,
                   tuple(galois), transfer, noise_bound)

    def to_meta(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-ready fields and arrays (the gather pattern) for a client spec."""
        meta = {"mode": self.mode.value, "poly_degree": self.poly_degree, "coeff_bits": list(self.coeff_bits),
                "plain_moduli": [str(t) for t in self.plain_moduli], "security": self.security,
                "period": self.period, "galois": [int(g) for g in self.galois], "transfer": self.transfer.value,
                "noise_bound": self.noise_bound}
        arrays = {"gather_cols": np.asarray(self.gather.cols, dtype=np.int64)} if self.gather is not None else {}
        return meta, arrays

    @classmethod
    def from_meta(cls, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> BFVClientParams:
        """Rebuild from :meth:`to_meta`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        try:
            cols = arrays.get("gather_cols")
            if cols is not None and (cols.ndim != 2 or cols.dtype.kind not in "iu"):
                raise ConfigError("BFV client spec: the gather pattern must be a 2-d integer array")
            return cls(Mode(meta["mode"]), int(meta["poly_degree"]), tuple(int(b) for b in meta["coeff_bits"]),
                       tuple(int(t) for t in meta["plain_moduli"]), int(meta["security"]), int(meta["period"]),
                       GatherLayout(np.asarray(cols, dtype=np.int64), int(meta["period"]), int(meta["poly_degree"]))
                       if cols is not None else None,
                       tuple(int(g) for g in meta["galois"]), Transfer(meta.get("transfer", "balanced")),
                       int(meta.get("noise_bound", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed BFV client spec: {exc!r}") from exc

