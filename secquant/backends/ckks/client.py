"""The CKKS client role: the secret key, encryption of integers, decryption to centered integers.

Built from the model interface and the client plan alone
(:class:`~.client_plan.CKKSClientPlan`): it knows no stage and no weight.
Decryption refuses any value past the proven output bound plus the error bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import ClientRole, Mode, Progress
from secquant.backends.ckks.client_plan import CKKSClientPlan
from secquant.backends.ckks.evaluate import seal_context
from secquant.backends.ckks.pairs import pair_slots
from secquant.backends.ckks.wire import BATCH, MATERIAL, PUBLIC_PARTS, RESULT
from secquant.backends.seal.ciphertext import Transfer, pack
from secquant.backends.seal.context import sealapi
from secquant.backends.seal.layout import tile
from secquant.backends.seal.serialize import load_seal, scratch
from secquant.backends.seal.wire import FrameWriter, frame, unframe
from secquant.errors import ConfigError, ModulusOverflowError
from secquant.quant.model import ModelInterface

__all__ = ["CKKSClient"]


class CKKSClient(ClientRole):
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

    def public_material(self) -> bytes:
        """Public, relinearization and (LATENCY) Galois keys, framed with the plan's fingerprint.

        Each key is serialized as soon as it is made and freed before the frame is joined, so the
        Galois keys (gigabytes at N=32768) never exist as SEAL objects and as bytes at once.
        """
        if self._material is None:
            kg, io = self._keygen, scratch()
            public_key = self._sa.PublicKey()
            kg.create_public_key(public_key)
            blobs = [io.dump(public_key), io.dump(kg.create_relin_keys())]
            names = list(PUBLIC_PARTS[:2])
            elements = self.plan.galois_elements()
            if elements:
                blobs.append(io.dump(kg.create_galois_keys(elements)))
                names.append("galois_keys")
            self._material = frame(MATERIAL, {"fingerprint": self.plan.fingerprint, "parts": names}, blobs)
        return self._material

    def release_public_material(self) -> None:
        """Drop the cached public material (see :meth:`ClientRole.release_public_material`)."""
        self._material = None

    @property
    def seeded(self) -> bool:
        """Requests are seeded (half the bytes), except THROUGHPUT under ``transfer=LATENCY`` (whole
        ciphertexts, whose residues the server reads straight from the wire)."""
        return self.plan.options.mode is Mode.LATENCY or self.plan.options.transfer is not Transfer.LATENCY

    def _encrypt_vector(self, values: list[float] | list[complex]) -> Any:
        """Secret-key encryption; seeded (:attr:`seeded`) or whole.

        A THROUGHPUT server reads whole inputs' residues straight from the wire
        (:mod:`~secquant.backends.seal.ciphertext`), which needs the second
        polynomial itself; seeded inputs it loads into SEAL, which expands the seed.
        """
        pt = self._sa.Plaintext()
        self._encoder.encode(values, self.context.first_parms_id(), self.plan.request_scale, pt)
        if self.seeded:
            return self._encryptor.encrypt_symmetric(pt)
        ct = self._sa.Ciphertext()
        self._encryptor.encrypt_symmetric(pt, ct)
        return ct

    def _slot_vectors(self, arr: NDArray[np.int64]) -> list[NDArray[Any]]:
        """The slots of every input ciphertext: gathered blocks, replicated copies (and the client's
        baby-step rotations of them), or one feature (or pair of features) of every input across slots."""
        slots = self.plan.slots
        if self.plan.gather is not None:
            return [v for row in arr for v in self.plan.gather.pack(row.astype(np.float64))]
        if self.plan.options.mode is Mode.LATENCY:
            tiled = [tile(row.astype(np.float64), self.plan.input_period, slots) for row in arr]
            return [np.roll(t, -b) for t in tiled for b in range(self.plan.input_copies)]
        chunks = [arr[start:start + slots].astype(np.float64) for start in range(0, arr.shape[0], slots)]
        if self.plan.paired_inputs:
            return [z for chunk in chunks for z in pair_slots(chunk, slots)]
        return [chunk[:, j] for chunk in chunks for j in range(arr.shape[1])]

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        """Encrypt integer inputs of shape (n, *input_shape); packed ciphertexts unless ``transfer=LATENCY``.

        Raises:
            ConfigError, InputRangeError: wrong shape or values outside the input range.
        """
        arr = self.interface.check_integers(xq)
        arr = arr.reshape(arr.shape[0], -1).astype(np.int64)
        vectors = self._slot_vectors(arr)
        meta = {"fingerprint": self.plan.fingerprint, "n": int(arr.shape[0]), "seeded": self.seeded}
        packed = self.plan.options.transfer is not Transfer.LATENCY  # then each blob's size is known
        bound = len(vectors) * self.plan.wire_bytes()["request_ciphertext_bytes"] if packed else None
        out, io = FrameWriter(BATCH, meta, len(vectors), size_hint=bound), scratch()
        for i, v in enumerate(vectors):  # each ciphertext goes into the frame as it is made: one copy
            blob = io.dump(self._encrypt_vector(v.tolist()))
            out.add(pack(blob) if packed else blob)
            if progress is not None:
                progress(i + 1, len(vectors))
        return out.finish()

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        """Decrypt to centered integers within ``max_abs_error_int`` of ``qm.forward_int``.

        Raises:
            ConfigError: malformed, or computed under other parameters.
            ModulusOverflowError: a value past the proven output bound plus the error bound.
        """
        values, n = self.decrypt_slots(payload)
        return self._to_ints(values).reshape(n, *self.interface.output_shape)

    def decrypt_slots(self, payload: bytes) -> tuple[NDArray[np.float64], int]:
        """The raw decoded outputs, before rounding or any check: shape (n, d_out), output steps, and n.

        This is everything a client learns of a result beyond the integers (the
        view a circuit-privacy audit must look at).

        Raises:
            ConfigError: malformed, or computed under other parameters.
        """
        meta, blobs = unframe(payload, RESULT)
        if meta.get("fingerprint") != self.plan.fingerprint:
            raise ConfigError("the result was computed under other CKKS parameters")
        n = meta.get("n")
        n_out = int(np.prod(self.interface.output_shape))
        latency = self.plan.options.mode is Mode.LATENCY
        expected = -1 if not isinstance(n, int) else n if latency else n_out * -(-n // self.plan.slots)
        if not isinstance(n, int) or n < 0 or len(blobs) != expected:
            raise ConfigError(f"malformed CKKS result: {len(blobs)} ciphertexts for n={n!r}")
        cts = load_seal(blobs, lambda: self._sa.Ciphertext(self.context), self.context, "CKKS result ciphertext")
        decoded = [self._decode(ct) for ct in cts]
        if latency:
            values = np.array([d[:n_out] for d in decoded]).reshape(n, n_out)
        else:
            chunks = [np.array(decoded[k * n_out:(k + 1) * n_out]).T for k in range(len(decoded) // n_out)]
            values = np.concatenate(chunks)[:n] if chunks else np.zeros((0, n_out))
        return values, n

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
