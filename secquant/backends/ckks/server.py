"""The CKKS server role: public and evaluation keys only; evaluates batches through the plan.

It refuses public material that carries a secret key (a ``secret`` part, or a
private TenSEAL context: :class:`~secquant.errors.KeyMaterialError`), and any
payload that is malformed, made under other parameters, or holds input
ciphertexts that are not fresh top-level encryptions at the plan's input scale
(:class:`~secquant.errors.ConfigError`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secquant.backends.base import Mode, ServerRole
from secquant.backends.ckks.evaluate import Evaluator, seal_context
from secquant.backends.ckks.plan import CKKSPlan, flood_sigma
from secquant.backends.ckks.wire import (
    BATCH,
    MATERIAL,
    PUBLIC_PARTS,
    RESULT,
    fingerprint,
)
from secquant.backends.release import draw_noise
from secquant.backends.seal.ciphertext import Transfer, from_bytes, pack
from secquant.backends.seal.context import sealapi
from secquant.backends.seal.privacy import CircuitPrivacy, gaussian_flood, rerandomize
from secquant.backends.seal.serialize import load_seal, save_seal, scratch
from secquant.backends.seal.wire import CKKS_MAGIC, frame, unframe
from secquant.errors import ConfigError, KeyMaterialError

__all__ = ["CKKSServer"]


def _refuse_tenseal_private(material: bytes) -> None:
    """A TenSEAL context that holds a secret key is refused as such; anything else is malformed."""
    try:
        import tenseal as ts  # type: ignore[import-untyped]

        ctx = ts.context_from(material)
    except (ValueError, RuntimeError, TypeError) as exc:  # TenSEAL's parse failures
        raise ConfigError(f"not CKKS public material: {type(exc).__name__}") from exc
    if ctx.is_private():
        raise KeyMaterialError("this TenSEAL context carries a secret key; a server must never hold it")
    raise ConfigError("a TenSEAL context is not secquant CKKS public material; send client.public_material()")


def _public_keys(plan: CKKSPlan, context: Any, material: bytes) -> dict[str, Any]:
    """The keys in ``material``, by part name.

    Raises:
        KeyMaterialError: a secret key or an unknown part.
        ConfigError: malformed, other parameters, or a key the plan needs is missing.
    """
    sa = sealapi()
    if isinstance(material, (bytes, bytearray)) and not bytes(material).startswith(CKKS_MAGIC):
        _refuse_tenseal_private(bytes(material))
    meta, blobs = unframe(material, MATERIAL)
    parts = meta.get("parts")
    if not isinstance(parts, list) or len(parts) != len(blobs):
        raise ConfigError("malformed CKKS public material: parts do not match blobs")
    secret = [p for p in parts if "secret" in str(p).lower()]
    if secret or any(p not in PUBLIC_PARTS for p in parts):
        raise KeyMaterialError(
            f"the CKKS public material carries {secret or parts}: a server must never hold the secret key; "
            "send only client.public_material()")
    if meta.get("fingerprint") != fingerprint(plan):
        raise ConfigError("the public material was made under other CKKS parameters (N, primes or mode)")
    makers = {"public_key": sa.PublicKey, "relin_keys": sa.RelinKeys, "galois_keys": sa.GaloisKeys}
    keys = {name: load_seal([blob], makers[name], context, f"CKKS {name}")[0] for name, blob in zip(parts, blobs)}
    if "relin_keys" not in keys:
        raise ConfigError("the CKKS public material lacks relinearization keys")
    if (plan.galois_steps or plan.paired_inputs) and "galois_keys" not in keys:
        raise ConfigError("the CKKS public material lacks the Galois keys this plan rotates with")
    return keys


class CKKSServer(ServerRole):
    """Evaluates on ciphertexts with public and evaluation keys only.

    Args:
        plan: The compiled plan.
        n_in: Flattened input features.
        material: ``CKKSClient.public_material()`` bytes.
    """

    def __init__(self, plan: CKKSPlan, n_in: int, material: bytes) -> None:
        self._sa = sealapi()
        self.plan = plan
        self.n_in = n_in
        self.context = seal_context(plan)
        keys = _public_keys(plan, self.context, material)
        self.evaluator = Evaluator(plan, self.context, keys["relin_keys"], keys.get("galois_keys"),
                                   keys.get("public_key"))

    def evaluate(self, payload: bytes) -> bytes:
        """Evaluate one batch.

        Raises:
            ConfigError: malformed, or encrypted under other parameters.
        """
        meta, blobs = unframe(payload, BATCH)
        if meta.get("fingerprint") != fingerprint(self.plan):
            raise ConfigError("the batch was encrypted under other CKKS parameters")
        n = meta.get("n")
        latency = self.plan.options.mode is Mode.LATENCY
        copies = self.plan.input_copies
        per_batch = self.plan.request_ciphertexts_per_batch
        expected = -1 if not isinstance(n, int) else n * copies if latency else per_batch * -(-n // self.plan.slots)
        if not isinstance(n, int) or n < 0 or len(blobs) != expected:
            raise ConfigError(f"malformed CKKS batch: {len(blobs)} ciphertexts for n={n!r}")
        if self.evaluator.takes_residues and not meta.get("seeded"):
            data_primes = len(self.plan.primes) - 1
            cts = [self.evaluator.residues(b, data_primes, self.plan.request_scale) for b in blobs]
        else:  # seeded inputs: SEAL expands the seed
            cts = [self._load_input(b, self.evaluator.takes_residues) for b in blobs]
        if latency:
            outs = [self.evaluator.run_latency(cts[k:k + copies]) for k in range(0, len(cts), copies)]
        else:
            outs = [y for k in range(0, len(cts), per_batch) for y in self.evaluator.run_throughput(cts[k:k + per_batch])]
        if self.plan.options.noise_bound:
            self._add_noise(outs)
        outs = [self._finish(ct) for ct in outs]
        blobs = save_seal(outs)
        if self.plan.options.transfer is not Transfer.LATENCY:  # residues at their primes' widths
            blobs = [pack(b) for b in blobs]
        return frame(RESULT, {"fingerprint": meta["fingerprint"], "n": n}, blobs)

    def _add_noise(self, outs: list[Any]) -> None:
        """Add the release noise to every slot of every result: fresh integers, encoded at the
        result's scale and level, so the client decodes ``y + e`` (within the stated error)."""
        encoder = self._sa.CKKSEncoder(self.context)
        for ct in outs:
            noise = draw_noise(self.plan.options.release, encoder.slot_count()).astype(np.float64)
            pt = self._sa.Plaintext()
            encoder.encode(noise.tolist(), ct.parms_id(), ct.scale, pt)
            self.evaluator.ev.add_plain_inplace(ct, pt)

    def _finish(self, ct: Any) -> Any:
        """The response: as evaluated, re-randomized, or re-randomized and flooded (``circuit_privacy``)."""
        opts, ev = self.plan.options, self.evaluator
        if opts.circuit_privacy is CircuitPrivacy.OFF:
            return ct
        if opts.circuit_privacy is CircuitPrivacy.RERANDOMIZE:
            return rerandomize(ct, self.context, ev.ev, ev.public_key)
        return gaussian_flood(ct, self.context, ev.ev, ev.public_key, flood_sigma(self.plan, ct.scale))

    def _load_input(self, blob: memoryview, residues: bool) -> Any:
        """One input loaded into SEAL (which expands a seed) and checked fresh at the request scale; as
        residues when the evaluator reads them (SEAL then holds one input at a time: its pool never shrinks).

        Raises:
            ConfigError: malformed, or not a fresh encryption at the top level and request scale.
        """
        ct = scratch().load(self._sa.Ciphertext(self.context), self.context, blob, "CKKS input ciphertext")
        if list(ct.parms_id()) != list(self.context.first_parms_id()) or ct.size() != 2:
            raise ConfigError("a CKKS input ciphertext is not a fresh encryption at the top level")
        if not np.isclose(ct.scale, self.plan.request_scale, rtol=1e-12, atol=0):
            raise ConfigError(f"a CKKS input ciphertext has scale {ct.scale}, the plan needs "
                              f"{self.plan.request_scale}")
        return from_bytes(scratch().dump(ct)) if residues else ct
