"""The CKKS backend: the integer model evaluated approximately on encrypted inputs.

Ciphertexts hold the model's *integers* (quantized input, integer weights),
each layer at a scale chosen from the proven bounds (:mod:`~.params`), and the
client rounds the decrypted results to centered integers that approximate
``qm.forward_int`` within ``parameters()["max_abs_error_int"]``.
``secquant.compile(qm, "ckks", mode=..., security=..., precision_bits=...,
poly_degree=..., scale_bits=...)`` or ``options=CKKSOptions(...)``
(:mod:`~.options`).  Wire formats are frames of SEAL objects (:mod:`~.wire`);
the public material carries the public, relinearization and Galois keys, never
the secret.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import (
    Backend,
    ClientRole,
    Mode,
    SimulationReport,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.ckks.client import CKKSClient
from secquant.backends.ckks.client_plan import CKKSClientPlan
from secquant.backends.ckks.options import CKKSOptions
from secquant.backends.ckks.params import plan_cheapest
from secquant.backends.ckks.server import CKKSServer
from secquant.backends.ckks.square import RATIOS
from secquant.backends.ckks.stages import stage_variants
from secquant.backends.ckks.wire import fingerprint
from secquant.backends.compile import Scheme, register_backend
from secquant.backends.release import release_details
from secquant.quant.lowering import clipped
from secquant.quant.model import QuantizedModel

__all__ = ["CKKSBackend"]


@register_backend(Scheme.CKKS)
class CKKSBackend(Backend):
    """CKKS through SEAL (``tenseal.sealapi``), parameters from the model's bounds.

    Args:
        qm: The quantized model.
        options: The user's choices (:class:`~.options.CKKSOptions`; None: the
            defaults). ``secquant.compile`` validates keyword options into one.

    Raises:
        ConfigError: ``options`` of another type.
        UnsupportedLayerError: an op CKKS does not evaluate.
        ParameterError: no secure parameters meet the precision target.
    """

    options_type: ClassVar[type[CKKSOptions]] = CKKSOptions
    options: CKKSOptions

    def __init__(self, qm: QuantizedModel, options: CKKSOptions | None = None) -> None:
        super().__init__(qm, options)
        if self.options.mode is Mode.AUTO:  # one layout per backend; EncryptedModel chooses per call (automode)
            self.options = dataclasses.replace(self.options, mode=Mode.LATENCY)
        variants = stage_variants(qm, RATIOS if self.options.complete_squares else ())
        self.stages, self.plan = plan_cheapest(variants, self.options, qm.bounds().output.observed_max_abs)
        self._sizes: dict[str, int] = {}

    def parameters(self) -> dict[str, Any]:
        """Every choice, JSON-ready (see :meth:`~.plan.CKKSPlan.to_dict`), with measured sizes once known."""
        out = self.plan.to_dict()
        out["release"] = release_details(self.plan.options.release, "the result slots at the output scale")
        out["sizes_bytes"] = dict(self._sizes) or "measured after the first client() / encrypt (see sizes_bytes)"
        out["wire"] = CKKSClientPlan.of(self.plan, fingerprint(self.plan)).wire_bytes(  # predicted without keys
            self.plan.sizes()["output_ciphertext"] // (16 * self.plan.poly_degree),
            features=int(np.prod(self.qm.input_shape)))
        return out

    def batch_size(self) -> int | None:
        return self.plan.slots if self.plan.options.mode is Mode.THROUGHPUT else None

    def request_ciphertexts(self) -> int:
        return self.plan.request_ciphertexts_per_batch

    def record_sizes(self, **sizes: int) -> None:
        """Remember measured byte sizes (public material, one request, one response) for ``parameters()``."""
        self._sizes.update({k: int(v) for k, v in sizes.items()})

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Key-less: the integer reference, the proven bound check, and the plan's levels and scales."""
        arr = self.qm.interface().check_integers(xq)
        ref = self.reference(arr)
        reasons = []
        observed = float(np.max(np.abs(np.asarray(ref, dtype=np.float64)))) if np.size(ref) else 0.0
        if observed > self.plan.output_bound:
            reasons.append(f"an output reaches {observed:.4g}, above the proven bound {self.plan.output_bound:.4g}")
        hits = int(np.sum(clipped(self.qm, arr))) if self.plan.clip_possible else 0
        if hits:
            reasons.append(f"{hits} of {len(arr)} input(s) reach the clip of a requantize op, which CKKS cannot apply: "
                           "the error bound does not cover them (requantize from wider ranges: headroom, or "
                           "range_from=PROVEN)")
        details = {"levels": [{"stage": s.stage.names, "primes_at_start": len(s.level_primes),
                               "log2_scale_out": float(np.log2(s.scale_out)),
                               "log2_message_bound": float(np.log2(max(s.message_bound, 1.0)))}
                              for s in self.plan.stages],
                   "max_abs_error_int": self.plan.max_abs_error_int,
                   "observed_output_max": observed, "output_bound": self.plan.output_bound,
                   "log2_q0": float(np.log2(self.plan.primes[0]))}
        return SimulationReport(ok=not reasons, reasons=reasons, output=ref, details=details)

    def client_spec(self) -> bytes:
        """Model interface, ring, primes, scales, layout and Galois steps; no stage, weight or coefficient."""
        meta, arrays = CKKSClientPlan.of(self.plan, fingerprint(self.plan)).to_meta()
        return encode_client_spec(Scheme.CKKS, self.qm.interface(), {"plan": meta}, arrays)

    @classmethod
    def client_from_spec(cls, spec: bytes) -> ClientRole:
        """A client with a fresh secret key, from :meth:`client_spec` bytes alone.

        Raises:
            ArtifactError, IntegrityError: not a CKKS client spec, or modified.
            ConfigError: malformed spec.
        """
        interface, meta, arrays = decode_client_spec(Scheme.CKKS, spec)
        return CKKSClient(interface, CKKSClientPlan.from_meta(meta.get("plan"), arrays))

    def server(self, public_material: bytes) -> CKKSServer:
        """Server role from public material only (refuses secret keys)."""
        server = CKKSServer(self.plan, int(np.prod(self.qm.input_shape)), public_material)
        self.record_sizes(public_material=len(public_material))
        return server
