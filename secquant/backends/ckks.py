"""The CKKS backend: the integer model evaluated approximately on encrypted inputs.

Ciphertexts hold the model's *integers* (quantized input, integer weights),
each layer at a scale chosen from the proven bounds (:mod:`.ckks_params`), and
the client rounds the decrypted results to centered integers that approximate
``qm.forward_int`` within ``parameters()["max_abs_error_int"]``.

Options of ``secquant.compile(qm, "ckks", ...)``:

* ``mode``: ``"latency"`` (default; one input per ciphertext, BSGS diagonals)
  or ``"throughput"`` (inputs across slots, one ciphertext per feature);
* ``security``: 128 (default), 192 or 256;
* ``precision_bits``: the error bound must stay below 2**-precision_bits of the
  output magnitude seen on calibration data (default 12);
* ``poly_degree``, ``scale_bits``: force N or the prime size (checked, never trusted).

Wire formats are frames of SEAL objects (:mod:`.seal_wire`); the public
material carries the public, relinearization and Galois keys, never the secret.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Backend, ClientRole, Mode, Progress, ServerRole, SimulationReport
from secquant.backends.base import decode_client_spec, encode_client_spec
from secquant.backends.ckks_client import CKKSClientPlan
from secquant.backends.ckks_eval import Evaluator, seal_context
from secquant.backends.ckks_params import CKKSPlan, PlanOptions, make_plan
from secquant.backends.ckks_stages import build_stages
from secquant.backends.seal.context import sealapi
from secquant.backends.seal.primes import galois_elt
from secquant.backends.seal.serialize import load_seal, save_seal
from secquant.backends.seal.wire import CKKS_MAGIC, frame, unframe
from secquant.backends.compile import Scheme, register_backend
from secquant.errors import ConfigError, KeyMaterialError, ModulusOverflowError
from secquant.quant.model import ModelInterface, QuantizedModel

__all__ = ["CKKSBackend"]

_MATERIAL = "public material"
_BATCH = "batch"
_RESULT = "result"
_PUBLIC_PARTS = ("public_key", "relin_keys", "galois_keys")
_OPTIONS = ("mode", "security", "precision_bits", "poly_degree", "scale_bits", "client_rotations")


def _fingerprint(plan: CKKSPlan) -> str:
    desc = {"n": plan.poly_degree, "primes": [str(p) for p in plan.primes], "mode": plan.options.mode.value,
            "steps": list(plan.galois_steps), "stages": len(plan.stages)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


class _CKKSClient(ClientRole):
    """Holds the secret key; encrypts integers and decrypts to centered integers; knows no weight."""

    def __init__(self, interface: ModelInterface, plan: CKKSClientPlan) -> None:
        sa = sealapi()
        self.interface, self.plan, self._sa = interface, plan, sa
        self.context = seal_context(plan)
        keygen = sa.KeyGenerator(self.context)
        self._secret_key = keygen.secret_key()
        self._keygen = keygen
        self._encryptor = sa.Encryptor(self.context, self._secret_key)
        self._decryptor = sa.Decryptor(self.context, self._secret_key)
        self._encoder = sa.CKKSEncoder(self.context)
        self._material: bytes | None = None
        self.key_seconds = 0.0

    def public_material(self) -> bytes:
        if self._material is None:
            t0 = time.perf_counter()
            kg = self._keygen
            public_key = self._sa.PublicKey()
            kg.create_public_key(public_key)
            parts = [public_key, kg.create_relin_keys()]
            names = list(_PUBLIC_PARTS[:2])
            if self.plan.galois_steps:
                elements = [galois_elt(step, self.plan.poly_degree) for step in self.plan.galois_steps]
                parts.append(kg.create_galois_keys(elements))
                names.append("galois_keys")
            meta = {"fingerprint": self.plan.fingerprint, "parts": names}
            self._material = frame(_MATERIAL, meta, save_seal(parts))
            self.key_seconds = time.perf_counter() - t0
        return self._material

    def _encrypt_vector(self, values: list[float]) -> Any:
        """Secret-key encryption; seeded (half the bytes) in LATENCY, whole in THROUGHPUT.

        A THROUGHPUT server reads the residues of the inputs straight from the
        wire (:mod:`~.seal_bytes`), which needs the second polynomial itself,
        not the seed SEAL would expand it from.
        """
        pt = self._sa.Plaintext()
        self._encoder.encode(values, self.context.first_parms_id(), self.plan.input_scale, pt)
        if self.plan.options.mode is Mode.LATENCY:
            return self._encryptor.encrypt_symmetric(pt)
        ct = self._sa.Ciphertext()
        self._encryptor.encrypt_symmetric(pt, ct)
        return ct

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        arr = self.interface.check_integers(xq)
        arr = arr.reshape(arr.shape[0], -1).astype(np.int64)
        slots, period = self.plan.slots, self.plan.input_period
        cts = []
        if self.plan.gather is not None:
            for row in arr:
                cts.extend(self._encrypt_vector(v.tolist())
                           for v in self.plan.gather.pack(row.astype(np.float64)))
        elif self.plan.options.mode is Mode.LATENCY:
            for row in arr:
                v = np.zeros(period)
                v[: row.size] = row
                tiled = np.tile(v, slots // period)
                for b in range(self.plan.input_copies):
                    cts.append(self._encrypt_vector(np.roll(tiled, -b).tolist()))
        else:
            for start in range(0, arr.shape[0], slots):
                chunk = arr[start:start + slots].astype(np.float64)
                for j in range(arr.shape[1]):
                    cts.append(self._encrypt_vector(chunk[:, j].tolist()))
        if progress is not None:
            progress(len(cts), len(cts))
        meta = {"fingerprint": self.plan.fingerprint, "n": int(arr.shape[0])}
        return frame(_BATCH, meta, save_seal(cts))

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        meta, blobs = unframe(payload, _RESULT)
        if meta.get("fingerprint") != self.plan.fingerprint:
            raise ConfigError("the result was computed under other CKKS parameters")
        n = meta.get("n")
        n_out = int(np.prod(self.interface.output_shape))
        slots = self.plan.slots
        mode = self.plan.options.mode
        expected = -1 if not isinstance(n, int) else n if mode is Mode.LATENCY else n_out * -(-n // slots)
        if not isinstance(n, int) or n < 0 or len(blobs) != expected:
            raise ConfigError(f"malformed CKKS result: {len(blobs)} ciphertexts for n={n!r}")
        cts = load_seal(blobs, lambda: self._sa.Ciphertext(self.context), self.context, "CKKS result ciphertext")
        decoded = [self._decode(ct) for ct in cts]
        if mode is Mode.LATENCY:
            values = np.array([d[:n_out] for d in decoded]).reshape(n, n_out)
        else:
            chunks = [np.array(decoded[k * n_out:(k + 1) * n_out]).T for k in range(len(decoded) // n_out)]
            values = np.concatenate(chunks)[:n] if chunks else np.zeros((0, n_out))
        return self._to_ints(values).reshape(n, *self.interface.output_shape)

    def _decode(self, ct: Any) -> NDArray[np.float64]:
        pt = self._sa.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return np.asarray(self._encoder.decode_double(pt))

    def _to_ints(self, values: NDArray[np.float64]) -> NDArray[Any]:
        limit = self.plan.output_bound + self.plan.max_abs_error + 1
        if values.size and (not np.all(np.isfinite(values)) or float(np.max(np.abs(values))) > limit):
            raise ModulusOverflowError(
                f"a decrypted CKKS value ({float(np.max(np.abs(values))):.4g}) exceeds the proven output bound "
                f"plus the error bound ({limit:.4g}); the ciphertext was corrupted or not made by this model",
                bound=int(self.plan.output_bound))
        rounded = np.rint(values)
        if self.plan.output_bound + self.plan.max_abs_error < 2**62:
            return rounded.astype(np.int64)
        return np.vectorize(int, otypes=[object])(rounded)


class _CKKSServer(ServerRole):
    """Evaluates on ciphertexts with public and evaluation keys only."""

    def __init__(self, qm: QuantizedModel, plan: CKKSPlan, material: bytes) -> None:
        sa = sealapi()
        if isinstance(material, (bytes, bytearray)) and not bytes(material).startswith(CKKS_MAGIC):
            _refuse_tenseal_private(bytes(material))
        meta, blobs = unframe(material, _MATERIAL)
        parts = meta.get("parts")
        if not isinstance(parts, list) or len(parts) != len(blobs):
            raise ConfigError("malformed CKKS public material: parts do not match blobs")
        secret = [p for p in parts if "secret" in str(p).lower()]
        if secret or any(p not in _PUBLIC_PARTS for p in parts):
            raise KeyMaterialError(
                f"the CKKS public material carries {secret or parts}: a server must never hold the secret key; "
                "send only client.public_material()")
        if meta.get("fingerprint") != _fingerprint(plan):
            raise ConfigError("the public material was made under other CKKS parameters (N, primes or mode)")
        self.plan = plan
        self.context = seal_context(plan)
        makers = {"public_key": sa.PublicKey, "relin_keys": sa.RelinKeys, "galois_keys": sa.GaloisKeys}
        keys = {name: load_seal([blob], makers[name], self.context, f"CKKS {name}")[0]
                for name, blob in zip(parts, blobs)}
        if "relin_keys" not in keys:
            raise ConfigError("the CKKS public material lacks relinearization keys")
        if plan.galois_steps and "galois_keys" not in keys:
            raise ConfigError("the CKKS public material lacks the Galois keys this plan rotates with")
        self._sa = sa
        self.evaluator = Evaluator(plan, self.context, keys["relin_keys"], keys.get("galois_keys"),
                                   keys.get("public_key"))
        self.n_out = int(np.prod(qm.output_shape))
        self.n_in = int(np.prod(qm.input_shape))

    def evaluate(self, payload: bytes) -> bytes:
        meta, blobs = unframe(payload, _BATCH)
        if meta.get("fingerprint") != _fingerprint(self.plan):
            raise ConfigError("the batch was encrypted under other CKKS parameters")
        n = meta.get("n")
        slots = self.plan.slots
        latency = self.plan.options.mode is Mode.LATENCY
        copies = self.plan.input_copies
        expected = -1 if not isinstance(n, int) else n * copies if latency else self.n_in * -(-n // slots)
        if not isinstance(n, int) or n < 0 or len(blobs) != expected:
            raise ConfigError(f"malformed CKKS batch: {len(blobs)} ciphertexts for n={n!r}")
        if self.evaluator.takes_residues:
            data_primes = len(self.plan.primes) - 1
            cts = [self.evaluator.residues(b, data_primes, self.plan.input_scale) for b in blobs]
        else:
            cts = self._load_inputs(blobs)
        if latency:
            outs = [self.evaluator.run_latency(cts[k:k + copies]) for k in range(0, len(cts), copies)]
        else:
            outs = []
            for k in range(0, len(cts), self.n_in):
                outs.extend(self.evaluator.run_throughput(cts[k:k + self.n_in]))
        return frame(_RESULT, {"fingerprint": meta["fingerprint"], "n": n}, save_seal(outs))

    def _load_inputs(self, blobs: list[bytes]) -> list[Any]:
        cts = load_seal(blobs, lambda: self._sa.Ciphertext(self.context), self.context, "CKKS input ciphertext")
        first = self.context.first_parms_id()
        for ct in cts:
            if list(ct.parms_id()) != list(first) or ct.size() != 2:
                raise ConfigError("a CKKS input ciphertext is not a fresh encryption at the top level")
            if not np.isclose(ct.scale, self.plan.input_scale, rtol=1e-12, atol=0):
                raise ConfigError(f"a CKKS input ciphertext has scale {ct.scale}, the plan needs {self.plan.input_scale}")
        return cts


def _refuse_tenseal_private(material: bytes) -> None:
    """A TenSEAL context that holds a secret key is refused as such; anything else is malformed."""
    try:
        import tenseal as ts

        ctx = ts.context_from(material)
    except (ValueError, RuntimeError, TypeError) as exc:  # TenSEAL's parse failures
        raise ConfigError(f"not CKKS public material: {type(exc).__name__}") from exc
    if ctx.is_private():
        raise KeyMaterialError("this TenSEAL context carries a secret key; a server must never hold it")
    raise ConfigError("a TenSEAL context is not secquant CKKS public material; send client.public_material()")


@register_backend(Scheme.CKKS)
class CKKSBackend(Backend):
    """CKKS through SEAL (``tenseal.sealapi``), parameters from the model's bounds."""

    def __init__(self, qm: QuantizedModel, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown CKKS option(s) {unknown}; known: {list(_OPTIONS)}")
        super().__init__(qm)
        self.options = PlanOptions(**options)
        self.stages = build_stages(qm)
        observed = qm.bounds().output.observed_max_abs
        self.plan = make_plan(self.stages, self.options, observed)
        self._sizes: dict[str, int] = {}

    def parameters(self) -> dict[str, Any]:
        out = self.plan.to_dict()
        out["sizes_bytes"] = dict(self._sizes) or "measured after the first client() / encrypt (see sizes_bytes)"
        return out

    def batch_size(self) -> int | None:
        return self.plan.slots if self.plan.options.mode is Mode.THROUGHPUT else None

    def record_sizes(self, **sizes: int) -> None:
        """Remember measured byte sizes (public material, one request, one response) for ``parameters()``."""
        self._sizes.update({k: int(v) for k, v in sizes.items()})

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        arr = self.qm.interface().check_integers(xq)
        ref = self.reference(arr)
        reasons = []
        observed = float(np.max(np.abs(np.asarray(ref, dtype=np.float64)))) if np.size(ref) else 0.0
        if observed > self.plan.output_bound:
            reasons.append(f"an output reaches {observed:.4g}, above the proven bound {self.plan.output_bound:.4g}")
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
        meta, arrays = CKKSClientPlan.of(self.plan, _fingerprint(self.plan)).to_meta()
        return encode_client_spec(Scheme.CKKS, self.qm.interface(), {"plan": meta}, arrays)

    @classmethod
    def client_from_spec(cls, spec: bytes) -> ClientRole:
        """A client with a fresh secret key, from :meth:`client_spec` bytes alone.

        Raises:
            ArtifactError, IntegrityError: not a CKKS client spec, or modified.
            ConfigError: malformed spec.
        """
        interface, meta, arrays = decode_client_spec(Scheme.CKKS, spec)
        return _CKKSClient(interface, CKKSClientPlan.from_meta(meta.get("plan"), arrays))

    def server(self, public_material: bytes) -> ServerRole:
        server = _CKKSServer(self.qm, self.plan, public_material)
        self.record_sizes(public_material=len(public_material))
        return server
