"""The BFV backend: exact integer inference mod t, with CRT past one prime.

``secquant.compile(qm, "bfv", mode=..., plain_modulus=..., poly_degree=...,
security=128, margin=10)``, or ``compile(qm, "bfv", options=BFVOptions(...))``.
Parameters come from ``qm.bounds()`` (:mod:`~.params`); results decrypt to
exactly ``qm.forward_int(xq)``.  Default mode is THROUGHPUT (one ciphertext per
feature; best for batches, no Galois keys); ``mode="latency"`` serves single
interactive queries.  Roles: :class:`~.client.BFVClient` (secret keys),
:class:`~.server.BFVServer` (public and evaluation keys only).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import (
    Backend,
    Mode,
    SimulationReport,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.bfv.client import BFVClient
from secquant.backends.bfv.client_params import BFVClientParams
from secquant.backends.bfv.evaluate import galois_elements
from secquant.backends.bfv.kit import PrimeKit
from secquant.backends.bfv.options import BFVOptions
from secquant.backends.bfv.params import choose_parameters
from secquant.backends.bfv.plan import Stage, build_plan, simulate_mod, stage_name
from secquant.backends.bfv.server import BFVServer
from secquant.backends.compile import Scheme, register_backend
from secquant.backends.release import check_modulus_with_noise, release_details
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.primes import crt_combine
from secquant.backends.seal.privacy import describe
from secquant.backends.seal.serialize import scratch
from secquant.errors import ConfigError
from secquant.quant.model import QuantizedModel
from secquant.quant.primitives import centered_lift

__all__ = ["BFVBackend"]


@register_backend(Scheme.BFV)
class BFVBackend(Backend):
    """Exact BFV evaluation of a quantized model (TenSEAL / SEAL).

    Args:
        qm: The quantized model.
        options: The user's choices (:class:`~.options.BFVOptions`; None: the
            defaults). ``secquant.compile`` validates keyword options into one.

    Raises:
        ConfigError: ``options`` of another type.
        ModulusOverflowError: ``plain_modulus`` below what the bounds need.
        ParameterError: no secure parameters exist for the model.
    """

    options_type: ClassVar[type[BFVOptions]] = BFVOptions
    options: BFVOptions

    def __init__(self, qm: QuantizedModel, options: BFVOptions | None = None) -> None:
        super().__init__(qm, options)
        if self.options.mode is Mode.AUTO:  # one layout per backend; EncryptedModel chooses per call (automode)
            self.options = dataclasses.replace(self.options, mode=Mode.THROUGHPUT)
        self.mode = self.options.mode
        if self.options.plain_modulus is not None:
            check_modulus_with_noise(qm, self.options.plain_modulus, self.options.noise_bound)  # before all else
        self.stages: list[Stage] = build_plan(qm)
        self.params = choose_parameters(qm, self.stages, self.options)
        self._sizes: dict[str, int] = {}

    def batch_size(self) -> int | None:
        return int(self.params.slots) if self.mode is Mode.THROUGHPUT else None

    def parameters(self) -> dict[str, Any]:
        """Every choice, JSON-ready, with measured key and ciphertext sizes (bytes)."""
        out = self.params.to_dict()
        out["multiplicative_depth"] = self.qm.multiplicative_depth
        out["stages"] = [f"{s.kind.value}:{stage_name(s)}" for s in self.stages]
        out["modulus_needed_bits"] = self.qm.modulus_needed.bit_length()
        out["inputs_per_ciphertext"] = self.params.slots
        out["circuit_privacy"] = describe(self.options.circuit_privacy, self.params.poly_degree)
        out["release"] = release_details(self.options.release, "the result slots under every CRT prime (the "
                                         "same integer mod each prime), before circuit privacy")
        out.update(self._measure_sizes())
        out["wire"] = self._client_params().wire_bytes(  # request/response bytes, predicted without keys
            int(self.params.trace[-1]["data_primes"]) if self.params.trace else len(self.params.coeff_bits) - 1,
            features=int(np.prod(self.qm.input_shape)))
        out["request_bytes_per_batch"] = out["wire"]["request_bytes_per_batch"]
        return out

    def _client_params(self) -> BFVClientParams:
        return BFVClientParams.of(self.params, galois_elements(self.params), self.options.transfer,
                                  self.options.noise_bound)

    def _measure_sizes(self) -> dict[str, int]:
        """Bytes of one fresh and one full ciphertext, the public context and the Galois keys (one prime)."""
        if self._sizes:
            return dict(self._sizes)
        import tenseal as ts  # type: ignore[import-untyped]

        p, io, sa = self.params, scratch(), seal()
        t = p.plain_moduli[0]
        ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=p.poly_degree, plain_modulus=int(t),
                         coeff_mod_bit_sizes=list(p.coeff_bits), n_threads=1)
        kit = PrimeKit.create(p, t)
        sk = io.transfer(ctx.secret_key().data, sa.SecretKey(), kit.context)
        enc = sa.Encryptor(kit.context, sk)
        ct_fresh = len(io.dump(enc.encrypt_symmetric(sa.Plaintext("1"))))
        full = sa.Ciphertext()
        enc.encrypt_symmetric(sa.Plaintext("1"), full)
        public = len(ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                   save_relin_keys=True))
        elts = galois_elements(p)  # every Galois key has the same size: measure one, multiply
        galois = len(elts) * (len(io.dump(sa.KeyGenerator(kit.context, sk).create_galois_keys(elts[:1])))
                              if elts else 0)
        k = len(p.plain_moduli)
        self._sizes = {"ciphertext_bytes_uploaded": ct_fresh if p.mode is Mode.LATENCY else len(io.dump(full)),
                       "ciphertext_bytes_evaluated": len(io.dump(full)),
                       "public_context_bytes_per_prime": public, "galois_keys_bytes_per_prime": galois,
                       "public_material_bytes": k * (public + galois)}
        return dict(self._sizes)

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Exact mod-t run of the plan per prime, CRT, bound check and noise estimate; no keys.

        The noise figures are a conservative estimate (:mod:`~.noise`), not a measurement.
        """
        qm, p = self.qm, self.params
        arr = qm._batched(np.asarray(xq))
        flat = arr.reshape(arr.shape[0], -1)
        residues = [simulate_mod(self.stages, flat, t).astype(object) for t in p.plain_moduli]
        combined = crt_combine(residues, p.plain_moduli) if len(residues) > 1 else residues[0]
        out = centered_lift(np.asarray(combined, dtype=object), p.total_plain_modulus)
        reasons: list[str] = []
        ref = np.asarray(qm.forward_int(arr), dtype=object).reshape(out.shape)
        if not np.array_equal(ref, out):
            reasons.append("the mod-t circuit disagrees with qm.forward_int (plaintext modulus too small)")
        if p.final_budget < p.margin:
            reasons.append(f"estimated final noise budget {p.final_budget} bits is below the margin {p.margin}")
        if p.total_plain_modulus < qm.modulus_needed:
            reasons.append("the CRT modulus is below the modulus the bounds need")
        result = out.reshape(arr.shape[0], *qm.output_shape)
        return SimulationReport(
            ok=not reasons, reasons=reasons,
            output=result.astype(np.int64) if qm.bounds().output.max_abs < 2**63 else result,
            details={"noise_budget_estimate": list(p.trace), "crt_primes": [int(t) for t in p.plain_moduli],
                     "poly_degree": p.poly_degree, "mode": p.mode.value,
                     "estimate_note": "noise figures are conservative estimates, not measurements"},
        )

    def client_spec(self) -> bytes:
        """Model interface, ring and CRT parameters, slot layout and Galois elements; no weight."""
        meta, arrays = self._client_params().to_meta()
        return encode_client_spec(Scheme.BFV, self.qm.interface(), {"params": meta}, arrays)

    @classmethod
    def client_from_spec(cls, spec: bytes) -> BFVClient:
        """Fresh keys for every CRT prime, from :meth:`client_spec` bytes alone.

        Raises:
            ArtifactError, IntegrityError: not a BFV client spec, or modified.
            ConfigError: malformed spec.
        """
        interface, meta, arrays = decode_client_spec(Scheme.BFV, spec)
        params = meta.get("params")
        if not isinstance(params, dict):
            raise ConfigError("BFV client spec lacks its parameters")
        return BFVClient(interface, BFVClientParams.from_meta(params, arrays))

    def server(self, public_material: bytes) -> BFVServer:
        """Server role from public material only (refuses secret keys)."""
        return BFVServer(self.params, self.stages, int(np.prod(self.qm.input_shape)), public_material,
                         self.options.circuit_privacy, self.options.transfer, self.options.release)
