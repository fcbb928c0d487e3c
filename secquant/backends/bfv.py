"""The BFV backend: exact integer inference mod t, with CRT past one prime.

``secquant.compile(qm, "bfv", mode=..., plain_modulus=..., poly_degree=...,
security=128, margin=10)``.  Parameters come from ``qm.bounds()`` (see
:mod:`secquant.backends.bfv_params`); results decrypt to exactly
``qm.forward_int(xq)``.

Roles and wire format (all bytes):

* the client makes one TenSEAL BFV context per CRT prime (secret key stays in
  the client); ``public_material()`` (a digest-checked artifact,
  :func:`secquant.artifact.encode_artifact`) holds each context serialized
  *without* its secret key (public and relinearization keys) and, in latency
  mode, SEAL Galois keys for exactly the rotation steps the plan uses; the
  server refuses any context that carries a secret key;
* batches and results are transport frames (:func:`~.seal_wire.frame`,
  magic ``SQBFV1``): a JSON header, then each prime's ciphertexts in turn;
* ``encrypt`` uses secret-key encryption: seeded (half the size of public-key
  ciphertexts) in latency mode, whole in throughput mode, where the server
  reads the residues straight from the wire for its integer matrix products.

Default mode is THROUGHPUT (one ciphertext per feature; best for batches, no
Galois keys); pass ``mode="latency"`` for single interactive queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import (
    Backend,
    ClientRole,
    Mode,
    ServerRole,
    SimulationReport,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.bfv_eval import PrimeKit, ServerProgram, galois_elements, pack_latency, unpack_latency
from secquant.backends.bfv_params import DEFAULT_MARGIN, BFVClientParams, BFVParameters, choose_parameters
from secquant.backends.bfv_plan import Stage, build_plan, simulate_mod
from secquant.backends.compile import Scheme, register_backend
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.primes import crt_combine
from secquant.backends.seal.serialize import scratch
from secquant.backends.seal.wire import BFV_MAGIC, frame, unframe
from secquant.errors import ArtifactError, ConfigError, KeyMaterialError, ModulusOverflowError
from secquant.quant.model import ModelInterface, QuantizedModel
from secquant.quant.primitives import centered_lift, coerce_enum

__all__ = ["BFVBackend", "BFVClient", "BFVServer"]

_PUBLIC = "secquant.BFVPublic"
_BATCH = "batch"
_RESULT = "result"
_OPTIONS = frozenset({"mode", "plain_modulus", "poly_degree", "security", "margin"})

Progress = Callable[[int, int], None]


def _frame(kind: str, params: BFVParameters | BFVClientParams, n: int, blobs: list[list[bytes]],
           extra: dict[str, Any] | None = None) -> bytes:
    """A transport frame (:func:`~.seal_wire.frame`): JSON header, then every prime's ciphertexts in turn."""
    meta = {"mode": params.mode.value, "n": int(n), "poly_degree": params.poly_degree,
            "plain_moduli": [str(t) for t in params.plain_moduli], "per_prime": len(blobs[0]) if blobs else 0,
            **(extra or {})}
    return frame(kind, meta, [b for per_prime in blobs for b in per_prime], BFV_MAGIC)


def _unframe(kind: str, payload: bytes,
             params: BFVParameters | BFVClientParams) -> tuple[dict[str, Any], list[list[memoryview]]]:
    meta, flat = unframe(payload, kind, BFV_MAGIC)
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
    k = len(params.plain_moduli)
    if n < 0 or per < 0 or len(flat) != k * per:
        raise ConfigError(f"malformed BFV payload: {len(flat)} ciphertexts, expected {k} primes x {per}")
    return meta, [flat[i * per:(i + 1) * per] for i in range(k)]


class BFVClient(ClientRole):
    """Holds the secret keys (one TenSEAL context per CRT prime); knows no weight.

    Built from a :class:`~secquant.quant.model.ModelInterface` and the client
    view of the parameters (see :meth:`BFVBackend.client_from_spec`).
    """

    def __init__(self, interface: ModelInterface, params: BFVClientParams) -> None:
        import tenseal as ts  # type: ignore[import-not-found]

        sa = seal()
        self.interface = interface
        self.params = params
        self._scratch = scratch()
        self._kits: list[PrimeKit] = []
        self._contexts: list[Any] = []
        self._galois: list[bytes] = []
        self.last_noise_budget: int | None = None
        elts = list(self.params.galois)
        for t in self.params.plain_moduli:
            ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=self.params.poly_degree, plain_modulus=int(t),
                             coeff_mod_bit_sizes=list(self.params.coeff_bits), n_threads=1)
            kit = PrimeKit.create(self.params, t)
            sk = self._scratch.transfer(ctx.secret_key().data, sa.SecretKey(), kit.context)
            kit.encryptor = sa.Encryptor(kit.context, sk)
            kit.decryptor = sa.Decryptor(kit.context, sk)
            self._galois.append(self._scratch.dump(sa.KeyGenerator(kit.context, sk).create_galois_keys(elts))
                                if elts else b"")
            self._kits.append(kit)
            self._contexts.append(ctx)

    def public_material(self) -> bytes:
        """Per prime: the TenSEAL context without secret key, and the Galois keys for the plan's steps."""
        arrays: dict[str, NDArray[Any]] = {}
        for i, ctx in enumerate(self._contexts):
            blob = ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                 save_relin_keys=True)
            arrays[f"context{i}"] = np.frombuffer(blob, dtype=np.uint8)
            arrays[f"galois{i}"] = np.frombuffer(self._galois[i], dtype=np.uint8)
        meta = {"parameters": {"poly_degree": self.params.poly_degree, "coeff_bits": list(self.params.coeff_bits),
                               "plain_moduli": [str(t) for t in self.params.plain_moduli],
                               "mode": self.params.mode.value}}
        return encode_artifact(_PUBLIC, 1, meta, arrays)

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        """Encrypt integer inputs of shape (n, *input_shape) under every CRT prime.

        Args:
            xq: Integers in the model's input range.
            progress: Called as ``progress(done, total)`` after each ciphertext.

        Raises:
            ConfigError, InputRangeError: wrong shape or values outside the input range.
        """
        arr = self.interface.check_integers(xq)
        flat = arr.reshape(arr.shape[0], -1).astype(np.int64)
        n, d = flat.shape
        p = self.params
        blobs: list[list[bytes]] = []
        if p.mode is Mode.THROUGHPUT:
            batches = [flat[i:i + p.poly_degree] for i in range(0, n, p.poly_degree)]
            total = len(p.plain_moduli) * len(batches) * d
        else:
            per_ct = p.inputs_per_ciphertext
            batches = [flat[i:i + per_ct] for i in range(0, n, per_ct)]
            total = len(p.plain_moduli) * len(batches)
        done = 0
        for kit in self._kits:
            per: list[bytes] = []
            for batch in batches:
                if p.mode is Mode.THROUGHPUT:
                    cols = np.mod(batch, kit.t)
                    for j in range(d):
                        col = np.zeros(p.poly_degree, dtype=np.int64)
                        col[: batch.shape[0]] = cols[:, j]
                        per.append(self._encrypt_slots(kit, col))
                        done += 1
                        if progress:
                            progress(done, total)
                elif p.gather is not None:
                    for slots in p.gather.pack(batch[0]):
                        per.append(self._encrypt_slots(kit, slots))
                    done += 1
                else:
                    per.append(self._encrypt_slots(kit, pack_latency(batch, p.period, p.poly_degree)))
                    done += 1
                    if progress:
                        progress(done, total)
            blobs.append(per)
        return _frame(_BATCH, p, n, blobs, {"features": d, "batches": len(batches)})

    def _encrypt_slots(self, kit: PrimeKit, slots: NDArray[Any]) -> bytes:
        """Secret-key encryption; seeded (half the bytes) in LATENCY, whole in THROUGHPUT, whose
        server reads the residues straight from the wire (it needs the second polynomial, not a seed)."""
        pt = kit.encode(slots)
        if self.params.mode is not Mode.THROUGHPUT:
            return self._scratch.dump(kit.encryptor.encrypt_symmetric(pt))
        ct = seal().Ciphertext()
        kit.encryptor.encrypt_symmetric(pt, ct)
        return self._scratch.dump(ct)

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        """Decrypt, recombine by CRT and check against the proven output bound.

        Raises:
            ConfigError: malformed payload.
            ModulusOverflowError: noise budget exhausted, or a value outside the proven bound.
        """
        sa = seal()
        p = self.params
        meta, blobs = _unframe(_RESULT, payload, p)
        n, batches = int(meta["n"]), int(meta.get("batches", 0))
        d_out = int(np.prod(self.interface.output_shape))
        residues = []
        worst = None
        for kit, per in zip(self._kits, blobs):
            cts = [self._scratch.load(sa.Ciphertext(), kit.context, b) for b in per]
            values = []
            for ct in cts:
                budget = kit.decryptor.invariant_noise_budget(ct)
                worst = budget if worst is None else min(worst, budget)
                if budget <= 0:
                    raise ModulusOverflowError(
                        "a BFV result's noise budget is exhausted, so its decryption cannot be trusted; "
                        "raise margin= or use a larger poly_degree", modulus=kit.t)
                pt = sa.Plaintext()
                kit.decryptor.decrypt(ct, pt)
                values.append(np.asarray(kit.encoder.decode_uint64(pt), dtype=np.uint64))
            if p.mode is Mode.THROUGHPUT:
                if len(values) != batches * d_out:
                    raise ConfigError("BFV result holds the wrong number of ciphertexts")
                cols = [np.stack(values[b * d_out:(b + 1) * d_out], axis=1) for b in range(batches)]
                res = np.concatenate(cols, axis=0)[:n] if cols else np.zeros((0, d_out), np.uint64)
            else:
                per_ct = p.inputs_per_ciphertext
                rows = [unpack_latency(v, d_out, p.poly_degree)[:per_ct] for v in values]
                res = np.concatenate(rows, axis=0)[:n] if rows else np.zeros((0, d_out), np.uint64)
                if res.shape[0] != n:
                    raise ConfigError("BFV result holds the wrong number of ciphertexts")
            residues.append(res.astype(object))
        self.last_noise_budget = worst
        total = p.total_plain_modulus
        combined = crt_combine(residues, p.plain_moduli) if len(residues) > 1 else residues[0]
        out = centered_lift(np.asarray(combined, dtype=object), total)
        return _check_bound(self.interface, out, total)


def _check_bound(interface: ModelInterface, out: NDArray[Any], modulus: int) -> NDArray[Any]:
    """Reshape decrypted values and refuse any past the proven bound on |output|.

    Raises:
        ModulusOverflowError: a value exceeds ``interface.output_max_abs``.
    """
    out = np.asarray(out, dtype=object).reshape(out.shape[0], *interface.output_shape)
    bound = interface.output_max_abs
    if out.size and (np.any(out < -bound) or np.any(out > bound)):
        raise ModulusOverflowError(
            "a decrypted BFV value lies outside the proven output bound; the result cannot be trusted",
            bound=bound, modulus=modulus)
    return interface.as_output(out)


class BFVServer(ServerRole):
    """Evaluates the plan; holds public and evaluation keys only."""

    def __init__(self, backend: BFVBackend, public_material: bytes) -> None:
        import tenseal as ts

        sa = seal()
        self.backend = backend
        self.params = backend.params
        self._scratch = scratch()
        if not isinstance(public_material, (bytes, bytearray)):
            raise ConfigError(f"public material must be bytes, got {type(public_material).__name__}")
        try:
            _, meta, arrays = read_artifact(bytes(public_material), _PUBLIC)
        except ArtifactError as exc:
            raise ConfigError(f"malformed BFV public material: {exc}") from exc
        self._programs: list[ServerProgram] = []
        for i, t in enumerate(self.params.plain_moduli):
            if f"context{i}" not in arrays:
                raise ConfigError(f"BFV public material lacks the context of prime {i}")
            try:
                ctx = ts.context_from(arrays[f"context{i}"].tobytes(), n_threads=1)
            except Exception as exc:
                raise ConfigError(f"malformed TenSEAL context in the public material: {exc}") from exc
            if ctx.has_secret_key() or ctx.is_private():
                raise KeyMaterialError(
                    "the BFV public material carries a secret key; the server refuses it. "
                    "Send only ClientRole.public_material() (serialize(save_secret_key=False))")
            kit = PrimeKit.create(self.params, t)
            try:
                relin_src, pub_src = ctx.relin_keys().data, ctx.public_key().data
            except Exception as exc:
                raise ConfigError(f"the TenSEAL context lacks public or relinearization keys: {exc}") from exc
            kit.relin = self._scratch.transfer(relin_src, sa.RelinKeys(), kit.context)
            kit.public = self._scratch.transfer(pub_src, sa.PublicKey(), kit.context)
            galois = arrays.get(f"galois{i}")
            if self.params.layout is not None and self.params.layout.steps:
                if galois is None or galois.size == 0:
                    raise ConfigError("latency mode needs Galois keys in the public material")
                kit.galois = self._scratch.load(sa.GaloisKeys(), kit.context, galois.tobytes())
            self._programs.append(ServerProgram(kit, backend.stages, self.params))

    def evaluate(self, payload: bytes) -> bytes:
        """Run the plan under every prime.

        Raises:
            ConfigError: malformed payload or one made under other parameters.
        """
        sa = seal()
        p = self.params
        meta, blobs = _unframe(_BATCH, payload, p)
        d_in = int(np.prod(self.backend.qm.input_shape))
        out: list[list[bytes]] = []
        for prog, per in zip(self._programs, blobs):
            cts = []
            if p.mode is Mode.THROUGHPUT and prog.takes_residues:
                per, cts = [], [prog.residues(b) for b in per]
            for b in per:
                ct = self._scratch.load(sa.Ciphertext(), prog.kit.context, b)
                if ct.size() != 2 or ct.is_ntt_form() or list(ct.parms_id()) != list(prog.kit.context.first_parms_id()):
                    raise ConfigError("BFV payload holds a ciphertext that is not a fresh encryption")
                cts.append(ct)
            results: list[Any] = []
            if p.mode is Mode.THROUGHPUT:
                batches = int(meta.get("batches", -1))
                if int(meta.get("features", -1)) != d_in or len(cts) != batches * d_in:
                    raise ConfigError("BFV payload holds the wrong number of ciphertexts for this model")
                for b in range(batches):
                    results.extend(prog.run_throughput(cts[b * d_in:(b + 1) * d_in]))
            else:
                lay = p.layout
                n_in = int(meta["n"])
                gather = lay.gather(p.poly_degree)
                if gather is not None:
                    chunks = gather.chunks
                    if len(cts) != n_in * chunks:
                        raise ConfigError("BFV payload holds the wrong number of ciphertexts for this model")
                    results = [prog.run_latency(cts[i * chunks:(i + 1) * chunks]) for i in range(n_in)]
                else:
                    if len(cts) != (n_in + 1) // 2:
                        raise ConfigError("BFV payload holds the wrong number of ciphertexts for this model")
                    results = [prog.run_latency([ct]) for ct in cts]
            out.append([self._scratch.dump(ct) for ct in results])
        return _frame(_RESULT, p, int(meta["n"]), out, {"batches": int(meta.get("batches", 0))})


@register_backend(Scheme.BFV)
class BFVBackend(Backend):
    """Exact BFV evaluation of a quantized model (TenSEAL / SEAL).

    Options:
        mode: ``"throughput"`` (default) or ``"latency"`` (or :class:`Mode`).
        plain_modulus: Force one plaintext prime t (no CRT); it must be prime,
            = 1 mod 2N, and at least ``qm.modulus_needed``.
        poly_degree: Force N (4096 ... 32768).
        security: 128 (default), 192 or 256 bits.
        margin: Bits of estimated noise budget to keep at the end (default 10).

    Raises:
        ConfigError: unknown options or values.
        ModulusOverflowError: ``plain_modulus`` below what the bounds need.
        ParameterError: no secure parameters exist for the model.
    """

    def __init__(self, qm: QuantizedModel, **options: Any) -> None:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(f"unknown BFV option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}")
        super().__init__(qm)
        self.mode = coerce_enum(options.get("mode", Mode.THROUGHPUT), Mode, "mode")
        plain = options.get("plain_modulus")
        if plain is not None and not isinstance(plain, bool) and isinstance(plain, (int, np.integer)):
            qm.bounds().check(int(plain))
        self.stages: list[Stage] = build_plan(qm)
        self.params = choose_parameters(
            qm, self.stages, self.mode, plain_modulus=plain, poly_degree=options.get("poly_degree"),
            security=int(options.get("security", 128)), margin=options.get("margin", DEFAULT_MARGIN),
        )
        self._sizes: dict[str, int] = {}

    def check_output(self, out: NDArray[Any]) -> NDArray[Any]:
        """Reshape decrypted values and refuse any outside the proven output bound.

        Raises:
            ModulusOverflowError: a value lies outside ``qm.bounds().output``.
        """
        qm = self.qm
        out = np.asarray(out, dtype=object).reshape(out.shape[0], *qm.output_shape)
        ob = qm.bounds().output
        if out.size and (np.any(out < ob.lo[None]) or np.any(out > ob.hi[None])):
            raise ModulusOverflowError(
                "a decrypted BFV value lies outside the proven output bound; the result cannot be trusted",
                layer=ob.name, bound=ob.max_abs, modulus=self.params.total_plain_modulus,
                modulus_needed=qm.modulus_needed)
        return out.astype(np.int64) if ob.max_abs < 2**63 else out

    def batch_size(self) -> int | None:
        return int(self.params.slots) if self.mode is Mode.THROUGHPUT else None

    def parameters(self) -> dict[str, Any]:
        """Every choice, JSON-ready, with measured key and ciphertext sizes (bytes)."""
        out = self.params.to_dict()
        out["multiplicative_depth"] = self.qm.multiplicative_depth
        out["stages"] = [type(s).__name__.replace("Stage", "").lower() + ":" + s.name for s in self.stages]
        out["modulus_needed_bits"] = self.qm.modulus_needed.bit_length()
        out["inputs_per_ciphertext"] = self.params.slots
        out.update(self._measure_sizes())
        return out

    def _measure_sizes(self) -> dict[str, int]:
        if not self._sizes:
            import tenseal as ts

            p = self.params
            t = p.plain_moduli[0]
            ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=p.poly_degree, plain_modulus=int(t),
                             coeff_mod_bit_sizes=list(p.coeff_bits), n_threads=1)
            io = scratch()
            sa = seal()
            kit = PrimeKit.create(p, t)
            sk = io.transfer(ctx.secret_key().data, sa.SecretKey(), kit.context)
            enc = sa.Encryptor(kit.context, sk)
            ct_fresh = len(io.dump(enc.encrypt_symmetric(sa.Plaintext("1"))))
            full = sa.Ciphertext()
            enc.encrypt_symmetric(sa.Plaintext("1"), full)
            ct_full = len(io.dump(full))
            public = len(ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                       save_relin_keys=True))
            elts = galois_elements(p)
            # every Galois key has the same size: measure one, multiply
            one = len(io.dump(sa.KeyGenerator(kit.context, sk).create_galois_keys(elts[:1]))) if elts else 0
            galois = one * len(elts)
            k = len(p.plain_moduli)
            self._sizes = {
                "ciphertext_bytes_uploaded": ct_fresh,
                "ciphertext_bytes_evaluated": ct_full,
                "public_context_bytes_per_prime": public,
                "galois_keys_bytes_per_prime": galois,
                "public_material_bytes": k * (public + galois),
                "request_bytes_per_batch": k * ct_fresh * (int(np.prod(self.qm.input_shape))
                                                            if p.mode is Mode.THROUGHPUT else
                                                            (p.layout.gather(p.poly_degree).chunks
                                                             if p.layout and p.layout.gather_cols is not None
                                                             else 1)),
            }
        return dict(self._sizes)

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Exact mod-t run of the plan per prime, CRT, bound check and noise estimate; no keys.

        The noise figures are a conservative estimate (see ``bfv_params.noise_trace``),
        not a measurement.
        """
        qm = self.qm
        arr = qm._batched(np.asarray(xq))
        flat = arr.reshape(arr.shape[0], -1)
        p = self.params
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
        meta, arrays = BFVClientParams.of(self.params, galois_elements(self.params)).to_meta()
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
        return BFVServer(self, public_material)

