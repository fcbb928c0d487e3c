"""The client's view of a CKKS plan: ring, moduli, scales and layout, never a stage.

:class:`CKKSClientPlan` is what :meth:`CKKSBackend.client_spec` publishes next to
the model interface.  It holds enough to make keys, encode and decode (N,
primes, the input scale, the slot layout, the Galois steps to make keys for,
the output and error bounds, and, when the client gathers the first stage,
that stage's sparsity pattern) and nothing the server evaluates: no stage, no
weight, no polynomial coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Mode
from secquant.backends.ckks.options import CKKSOptions
from secquant.backends.ckks.pairs import conjugation_element, request_ciphertexts
from secquant.backends.ckks.plan import CKKSPlan
from secquant.backends.seal.ciphertext import FRAME_OVERHEAD, RESPONSE_HEADER, Transfer, packed_size
from secquant.backends.seal.gather import SharedGather
from secquant.backends.seal.primes import galois_elt
from secquant.backends.seal.wire import WRITER_BYTES_PER_BLOB
from secquant.errors import ConfigError

__all__ = ["CKKSClientPlan"]


@dataclass(frozen=True, eq=False)
class CKKSClientPlan:
    """The fields of a :class:`~secquant.backends.ckks.plan.CKKSPlan` the client uses.

    Attributes:
        options: Mode and security (the other options do not matter to the client).
        poly_degree: N.
        primes: Coefficient modulus, q0 first, the special prime last.
        input_scale: Δ0 of the encoded inputs.
        input_period: Slot period of the input (LATENCY).
        input_copies: Ciphertexts per input (LATENCY: the client's baby-step rotations).
        output_bound: Proven bound on |output| as released: the model's bound plus the
            largest release noise (:attr:`CKKSOptions.noise_bound`).
        max_abs_error: Error bound of the decoded outputs before rounding, integer units.
        galois_steps: Rotation steps to make Galois keys for.
        fingerprint: The plan's parameter fingerprint, echoed in every message.
        gather: LATENCY with a gathered first stage: its sparsity pattern, rows and periods.
        paired_inputs: THROUGHPUT: two features per slot (:mod:`~.pairs`), encoded at
            ``input_scale / 2``, and a Galois key for conjugation.

    Raises:
        ConfigError: a field is out of range.
    """

    options: CKKSOptions
    poly_degree: int
    primes: tuple[int, ...]
    input_scale: float
    input_period: int
    input_copies: int
    output_bound: float
    max_abs_error: float
    galois_steps: tuple[int, ...]
    fingerprint: str
    gather: SharedGather | None = None
    paired_inputs: bool = False

    def __post_init__(self) -> None:
        n = self.poly_degree
        if n < 2 or n & (n - 1) or len(self.primes) < 2:
            raise ConfigError(f"CKKS client plan: N={n} with {len(self.primes)} prime(s) is not a valid ring")
        if not (self.input_scale > 0 and self.output_bound >= 0 and self.max_abs_error >= 0):
            raise ConfigError("CKKS client plan: scales and bounds must be positive")
        if not (1 <= self.input_period <= n // 2 and 1 <= self.input_copies <= n // 2):
            raise ConfigError(f"CKKS client plan: period {self.input_period} or copies {self.input_copies} "
                              "out of range")
        if not isinstance(self.paired_inputs, bool) or (self.paired_inputs and self.options.mode is not Mode.THROUGHPUT):
            raise ConfigError("CKKS client plan: paired inputs are a THROUGHPUT layout")
        g = self.gather
        if g is not None and (g.slots != n // 2 or g.chunks != self.input_copies):
            raise ConfigError("CKKS client plan: the gather layout does not fit the ring")

    @property
    def slots(self) -> int:
        """N/2."""
        return self.poly_degree // 2

    @property
    def request_scale(self) -> float:
        """The scale inputs are encoded at: Δ0, or Δ0/2 with :attr:`paired_inputs`."""
        return self.input_scale / 2 if self.paired_inputs else self.input_scale

    def galois_elements(self) -> list[int]:
        """The Galois elements the client makes keys for: its rotation steps', and conjugation's when paired."""
        elements = [galois_elt(step, self.poly_degree) for step in self.galois_steps]
        return elements + ([conjugation_element(self.poly_degree)] if self.paired_inputs else [])

    def wire_bytes(self, output_primes: int = 1, features: int | None = None) -> dict[str, Any]:
        """Request bytes per input (LATENCY) or per batch (THROUGHPUT), known before any key exists.

        The request is the input ciphertexts, fresh at the top level (the first stage needs every data
        prime): seeded (one polynomial and a seed), except THROUGHPUT under ``transfer=LATENCY``
        (whole: its server reads the residues); packed (:func:`~secquant.backends.seal.ciphertext.pack`) unless
        ``transfer=LATENCY``, whose zstd blobs are about 1.2x the packed size (not modelled exactly).
        The response is one ciphertext per input, two polynomials over the ``output_primes`` primes
        of the output level: packed too (exact up to a byte per row) unless ``transfer=LATENCY``,
        whose bound is 8 bytes per residue before SEAL's compression.  In THROUGHPUT, ``features``
        (the flattened input size) adds ``request_bytes_per_batch`` (one ciphertext per feature, or
        per pair of features with :attr:`paired_inputs`, for up to N/2 inputs) and that over N/2, ``request_bytes_per_input_amortized`` (a full batch).
        """
        bits = [int(p).bit_length() for p in self.primes[:-1]]
        latency = self.options.mode is Mode.LATENCY
        count = self.input_copies if latency else None
        one = packed_size(self.poly_degree, bits, latency or self.options.transfer is not Transfer.LATENCY)
        out: dict[str, Any] = {"transfer": self.options.transfer.value, "request_ciphertext_bytes": one,
                               "request_ciphertexts_per_input": count,
                               "request_format": "packed" if self.options.transfer is not Transfer.LATENCY
                               else "SEAL zstd (size approximate)"}
        if count is None and features is not None:
            cts = request_ciphertexts(features, self.paired_inputs)
            out["request_bytes_per_batch"] = cts * (one + WRITER_BYTES_PER_BLOB) + FRAME_OVERHEAD
            out["request_bytes_per_input_amortized"] = out["request_bytes_per_batch"] / self.slots
        if count is not None:
            out["request_bytes_per_input"] = count * one + FRAME_OVERHEAD + WRITER_BYTES_PER_BLOB * count
            if self.options.transfer is Transfer.LATENCY:
                response = RESPONSE_HEADER + 16 * self.poly_degree * output_primes
            else:
                response = packed_size(self.poly_degree, bits[:output_primes], False)
            out["response_bytes_per_input_max"] = response + FRAME_OVERHEAD + 8
        return out

    @classmethod
    def of(cls, plan: CKKSPlan, fingerprint: str) -> CKKSClientPlan:
        """The client view of ``plan``."""
        options = CKKSOptions(mode=plan.options.mode, security=plan.options.security,
                              transfer=plan.options.transfer)
        gather = plan.stages[0].gather if plan.stages else None
        return cls(options, plan.poly_degree, tuple(int(p) for p in plan.primes), float(plan.input_scale),
                   int(plan.input_period), int(plan.input_copies),
                   float(plan.output_bound + plan.options.noise_bound),
                   float(plan.max_abs_error), tuple(int(s) for s in plan.galois_steps), fingerprint, gather,
                   plan.paired_inputs)

    def to_meta(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-ready fields (big primes as strings) and arrays (the gather pattern)."""
        meta = {"mode": self.options.mode.value, "security": self.options.security,
                "transfer": self.options.transfer.value, "poly_degree": self.poly_degree,
                "primes": [str(p) for p in self.primes], "input_scale": self.input_scale,
                "input_period": self.input_period, "input_copies": self.input_copies,
                "output_bound": self.output_bound, "max_abs_error": self.max_abs_error,
                "galois_steps": list(self.galois_steps), "fingerprint": self.fingerprint,
                "gather_period": self.gather.period if self.gather is not None else None,
                "gather_block": self.gather.block if self.gather is not None else None,
                "paired_inputs": self.paired_inputs}
        arrays = {} if self.gather is None else {"gather_cols": np.asarray(self.gather.cols, dtype=np.int64),
                                                 "gather_rows": np.asarray(self.gather.rows, dtype=np.int64)}
        return meta, arrays

    @classmethod
    def from_meta(cls, meta: Any, arrays: dict[str, NDArray[Any]] | None = None) -> CKKSClientPlan:
        """Rebuild from :meth:`to_meta`.

        Raises:
            ConfigError: a field is missing or invalid.
        """
        if not isinstance(meta, dict):
            raise ConfigError("CKKS client spec lacks its plan")
        try:
            options = CKKSOptions(mode=Mode(meta["mode"]), security=int(meta["security"]),
                                  transfer=Transfer(meta.get("transfer", Transfer.BALANCED.value)))
            fingerprint, paired_inputs = meta["fingerprint"], meta.get("paired_inputs", False)
            if not isinstance(fingerprint, str) or not isinstance(paired_inputs, bool):
                raise ConfigError("CKKS client plan: the fingerprint must be a string, paired_inputs a boolean")
            gather = _gather_from(meta, arrays or {})
            return cls(options, int(meta["poly_degree"]), tuple(int(str(p)) for p in meta["primes"]),
                       float(meta["input_scale"]), int(meta["input_period"]), int(meta["input_copies"]),
                       float(meta["output_bound"]), float(meta["max_abs_error"]),
                       tuple(int(s) for s in meta["galois_steps"]), fingerprint, gather, paired_inputs)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"malformed CKKS client plan: {exc!r}") from exc


def _gather_from(meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> SharedGather | None:
    """The gather layout of a client spec; a spec without rows and block has one row per output.

    Raises:
        ConfigError: a malformed pattern (:class:`~secquant.backends.seal.gather.SharedGather` checks it).
    """
    cols, rows = arrays.get("gather_cols"), arrays.get("gather_rows")
    if cols is None and meta.get("gather_period") is None:
        return None
    if cols is None or cols.ndim != 2 or cols.dtype.kind not in "iu" or (
            rows is not None and (rows.ndim != 1 or rows.dtype.kind not in "iu")):
        raise ConfigError("CKKS client plan: malformed gather pattern")
    period = int(meta["gather_period"])
    if rows is None:
        rows = np.arange(cols.shape[0], dtype=np.int64)
    block = meta.get("gather_block")
    return SharedGather(np.asarray(cols, dtype=np.int64), np.asarray(rows, dtype=np.int64),
                        period if block is None else int(block), period, int(meta["poly_degree"]) // 2)
