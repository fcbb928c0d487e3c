"""The BFV server role: public and evaluation keys only; runs the plan under every CRT prime.

The server refuses public material that carries a secret key
(:class:`~secquant.errors.KeyMaterialError`), and any payload that is
malformed, made under other parameters, or holds ciphertexts that are not
fresh top-level encryptions (:class:`~secquant.errors.ConfigError`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import read_artifact
from secquant.backends.base import Mode, ServerRole
from secquant.backends.bfv.evaluate import ServerProgram, galois_elements
from secquant.backends.bfv.kit import PrimeKit
from secquant.backends.bfv.params import BFVParameters
from secquant.backends.bfv.plan import Stage
from secquant.backends.bfv.wire import (
    BATCH,
    PUBLIC,
    RESULT,
    frame_primes,
    unframe_primes,
)
from secquant.backends.release import draw_noise, noise_bound
from secquant.backends.seal.ciphertext import Transfer, from_bytes, pack
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.privacy import CircuitPrivacy, flood, flood_bound_bits, rerandomize
from secquant.backends.seal.serialize import scratch
from secquant.errors import ArtifactError, ConfigError, KeyMaterialError

__all__ = ["BFVServer"]

_WRONG_COUNT = "BFV payload holds the wrong number of ciphertexts for this model"


def _take(items: list[Any], k: int) -> list[Any]:
    """The first ``k`` items, removed from ``items``."""
    head = items[:k]
    del items[:k]
    return head


class BFVServer(ServerRole):
    """Evaluates the plan; holds public and evaluation keys only.

    Args:
        params: The compiled parameters.
        stages: The plan.
        d_in: Flattened input features.
        public_material: ``BFVClient.public_material()`` bytes.
        circuit_privacy: How the response is finished (default OFF).
        transfer: Responses are packed (:func:`~secquant.backends.seal.ciphertext.pack`) unless LATENCY.
        release: Release policy of the outputs (None: full logits); noise is added to every slot of
            every result ciphertext, the same integer under every CRT prime, before circuit privacy.

    Raises:
        ConfigError: malformed material, or keys that do not match the parameters.
        KeyMaterialError: the material carries a secret key.
    """

    def __init__(self, params: BFVParameters, stages: list[Stage], d_in: int, public_material: bytes,
                 circuit_privacy: CircuitPrivacy = CircuitPrivacy.OFF, transfer: Transfer = Transfer.BALANCED,
                 release: Any = None) -> None:
        self.params = params
        self.release = release if release is not None and noise_bound(release) else None
        self.circuit_privacy = circuit_privacy
        self.transfer = transfer
        self.d_in = d_in
        self._scratch = scratch()
        if not isinstance(public_material, (bytes, bytearray)):
            raise ConfigError(f"public material must be bytes, got {type(public_material).__name__}")
        try:
            _, _, arrays = read_artifact(bytes(public_material), PUBLIC)
        except ArtifactError as exc:
            raise ConfigError(f"malformed BFV public material: {exc}") from exc
        self._programs = [ServerProgram(self._kit(i, t, arrays), stages, params)
                          for i, t in enumerate(params.plain_moduli)]

    def _kit(self, i: int, t: int, arrays: dict[str, NDArray[Any]]) -> PrimeKit:
        """SEAL objects and evaluation keys of prime ``i`` from its public TenSEAL context."""
        import tenseal as ts  # type: ignore[import-untyped]

        sa = seal()
        if f"context{i}" not in arrays:
            raise ConfigError(f"BFV public material lacks the context of prime {i}")
        try:
            ctx = ts.context_from(arrays[f"context{i}"].tobytes(), n_threads=1)
        except Exception as exc:  # TenSEAL raises several unrelated types on malformed bytes
            raise ConfigError(f"malformed TenSEAL context in the public material: {exc}") from exc
        if ctx.has_secret_key() or ctx.is_private():
            raise KeyMaterialError(
                "the BFV public material carries a secret key; the server refuses it. "
                "Send only ClientRole.public_material() (serialize(save_secret_key=False))")
        kit = PrimeKit.create(self.params, t)
        try:
            relin_src, pub_src = ctx.relin_keys().data, ctx.public_key().data
        except Exception as exc:  # TenSEAL raises several unrelated types on missing keys
            raise ConfigError(f"the TenSEAL context lacks public or relinearization keys: {exc}") from exc
        kit.relin = self._scratch.transfer(relin_src, sa.RelinKeys(), kit.context)
        kit.public = self._scratch.transfer(pub_src, sa.PublicKey(), kit.context)
        galois = arrays.get(f"galois{i}")
        if galois_elements(self.params):  # every rotation the plan makes: BSGS steps and the gather folds
            if galois is None or galois.size == 0:
                raise ConfigError("latency mode needs Galois keys in the public material")
            kit.galois = self._scratch.load(sa.GaloisKeys(), kit.context, galois.tobytes(), "BFV Galois keys")
        return kit

    def _inputs(self, prog: ServerProgram, blobs: list[memoryview], seeded: bool = False) -> list[Any]:
        """Fresh top-level input ciphertexts (or their residues, when the program reads them and they
        are whole: a seeded input is loaded into SEAL, which expands its seed).

        Raises:
            ConfigError: malformed, or not a fresh encryption.
        """
        if self.params.mode is Mode.THROUGHPUT and prog.takes_residues and not seeded:
            return [prog.residues(b) for b in blobs]
        residues = self.params.mode is Mode.THROUGHPUT and prog.takes_residues
        return [self._fresh(prog, b, residues) for b in blobs]

    def _fresh(self, prog: ServerProgram, blob: memoryview, residues: bool) -> Any:
        """One input loaded into SEAL (which expands a seed) and checked fresh; as residues when the
        program reads them (SEAL then holds one input at a time, not the layer: its pool never shrinks).

        Raises:
            ConfigError: malformed, or not a fresh encryption.
        """
        ct = self._scratch.load(seal().Ciphertext(), prog.kit.context, blob, "BFV input ciphertext")
        if ct.size() != 2 or ct.is_ntt_form() or list(ct.parms_id()) != list(prog.kit.context.first_parms_id()):
            raise ConfigError("BFV payload holds a ciphertext that is not a fresh encryption")
        return from_bytes(self._scratch.dump(ct)) if residues else ct

    def _run(self, prog: ServerProgram, cts: list[Any], meta: dict[str, Any]) -> list[Any]:
        """The result ciphertexts of one prime."""
        p, d_in = self.params, self.d_in
        if p.mode is Mode.THROUGHPUT:
            batches, n = int(meta.get("batches", -1)), int(meta["n"])
            if int(meta.get("features", -1)) != d_in or len(cts) != batches * d_in:
                raise ConfigError(_WRONG_COUNT)
            if not (batches - 1) * p.slots < n <= batches * p.slots and (n, batches) != (0, 0):
                raise ConfigError(f"BFV payload claims {n} inputs in {batches} batch(es) of {p.slots} slots")
            outs = []
            for _ in range(batches):  # hand each batch over: its inputs are freed once its first stage ran
                outs += prog.run_throughput(_take(cts, d_in))
            return outs
        n_in, gather = int(meta["n"]), p.gather
        if gather is not None:
            if len(cts) != n_in * gather.chunks:
                raise ConfigError(_WRONG_COUNT)
            return [prog.run_latency(cts[i * gather.chunks:(i + 1) * gather.chunks]) for i in range(n_in)]
        if len(cts) != (n_in + 1) // 2:
            raise ConfigError(_WRONG_COUNT)
        return [prog.run_latency([ct]) for ct in cts]

    def evaluate(self, payload: bytes) -> bytes:
        """Run the plan under every prime.

        Raises:
            ConfigError: malformed payload or one made under other parameters.
        """
        meta, blobs = unframe_primes(BATCH, payload, self.params)
        seeded = bool(meta.get("seeded"))
        noise: dict[int, NDArray[np.int64]] = {}
        out = [[self._response(self._finish(prog, self._add_noise(prog, noise, k, ct)))
                for k, ct in enumerate(self._run(prog, self._inputs(prog, per, seeded), meta))]
               for prog, per in zip(self._programs, blobs)]
        return frame_primes(RESULT, self.params, int(meta["n"]), out, {"batches": int(meta.get("batches", 0))})

    def _add_noise(self, prog: ServerProgram, noise: dict[int, NDArray[np.int64]], k: int, ct: Any) -> Any:
        """Add the release noise of result ``k`` to its slots: one draw per slot, shared by every
        CRT prime (``noise`` keeps it), so the CRT recombination decodes ``y + e`` exactly."""
        if self.release is None:
            return ct
        if k not in noise:
            noise[k] = draw_noise(self.release, self.params.poly_degree)
        prog.kit.evaluator.add_plain_inplace(ct, prog.kit.encode(noise[k]))
        return ct

    def _response(self, ct: Any) -> bytes:
        blob = self._scratch.dump(ct)
        return blob if self.transfer is Transfer.LATENCY else pack(blob)

    def _finish(self, prog: ServerProgram, ct: Any) -> Any:
        """The response ciphertext: as evaluated, re-randomized, or re-randomized and flooded."""
        if self.circuit_privacy is CircuitPrivacy.OFF:
            return ct
        kit = prog.kit
        if self.circuit_privacy is CircuitPrivacy.RERANDOMIZE:
            return rerandomize(ct, kit.context, kit.evaluator, kit.public)
        p = self.params
        q_bits = sum(math.log2(int(m.value()))
                     for m in kit.context.get_context_data(ct.parms_id()).parms().coeff_modulus())
        bound = flood_bound_bits(q_bits, max(p.plain_moduli), p.final_budget, p.poly_degree)
        return flood(ct, kit.context, kit.evaluator, kit.public, bound)
