"""The BFV client role: secret keys (one per CRT prime), encryption, checked decryption.

The client makes one TenSEAL BFV context per CRT prime and keeps its secret
key.  ``public_material()`` (a digest-checked artifact) holds each context
serialized *without* its secret key (public and relinearization keys) and, in
latency mode, SEAL Galois keys for exactly the rotation steps the plan uses.
``encrypt`` uses secret-key encryption: seeded (half the size) in latency
mode, whole in throughput mode, where the server reads the residues straight
from the wire.  ``decrypt`` is the one checked decryption path: noise budget,
CRT recombination, then :func:`check_output` against the proven bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact
from secquant.backends.base import ClientRole, Mode, Progress
from secquant.backends.bfv.client_params import BFVClientParams
from secquant.backends.bfv.kit import PrimeKit
from secquant.backends.bfv.latency import pack_latency, unpack_latency
from secquant.backends.bfv.wire import (
    BATCH,
    PUBLIC,
    RESULT,
    prime_writer,
    unframe_primes,
)
from secquant.backends.seal.ciphertext import Transfer, pack
from secquant.backends.seal.context import sealapi as seal
from secquant.backends.seal.primes import crt_combine
from secquant.backends.seal.serialize import scratch
from secquant.errors import ConfigError, ModulusOverflowError
from secquant.quant.model import ModelInterface
from secquant.quant.primitives import centered_lift

__all__ = ["BFVClient", "check_output"]


def check_output(interface: ModelInterface, out: NDArray[Any], modulus: int, noise: int = 0) -> NDArray[Any]:
    """Reshape decrypted centered integers and refuse any past the proven bound on |output|.

    Args:
        interface: The model's interface (output shape and proven bound).
        out: Decrypted centered integers, shape (n, d_out).
        modulus: The plaintext modulus they were decrypted under (for the error).
        noise: Largest |noise| the server's release policy adds (widens the bound).

    Raises:
        ModulusOverflowError: a value exceeds ``interface.output_max_abs``: the
            result cannot be trusted (a corrupted ciphertext or a faulty server).
    """
    out = np.asarray(out, dtype=object).reshape(out.shape[0], *interface.output_shape)
    bound = interface.output_max_abs + noise
    if out.size and (np.any(out < -bound) or np.any(out > bound)):
        raise ModulusOverflowError(
            "a decrypted BFV value lies outside the proven output bound; the result cannot be trusted",
            bound=bound, modulus=modulus)
    return interface.as_output(out)


class BFVClient(ClientRole):
    """Holds the secret keys (one TenSEAL context per CRT prime); knows no weight.

    Built from a :class:`~secquant.quant.model.ModelInterface` and the client
    view of the parameters (see ``BFVBackend.client_from_spec``).

    Attributes:
        last_noise_budget: Smallest noise budget (bits) SEAL measured in the last decrypted result.
    """

    def __init__(self, interface: ModelInterface, params: BFVClientParams) -> None:
        import tenseal as ts  # type: ignore[import-untyped]

        sa = seal()
        self.interface = interface
        self.params = params
        self._scratch = scratch()
        self._kits: list[PrimeKit] = []
        self._contexts: list[Any] = []
        self._galois: list[bytes] = []
        self.last_noise_budget: int | None = None
        elts = list(params.galois)
        for t in params.plain_moduli:
            ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=params.poly_degree, plain_modulus=int(t),
                             coeff_mod_bit_sizes=list(params.coeff_bits), n_threads=1)
            kit = PrimeKit.create(params, t)
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
        return encode_artifact(PUBLIC, 1, meta, arrays)

    def _slot_vectors(self, kit: PrimeKit, batch: NDArray[np.int64]) -> Iterator[NDArray[Any]]:
        """The slots of every ciphertext of one batch, one at a time (throughput: one per feature, made
        as it is encrypted, not a features x N matrix; latency: one input)."""
        p = self.params
        if p.mode is Mode.THROUGHPUT:
            for column in np.mod(batch, kit.t).T:
                slots = np.zeros(p.poly_degree, dtype=np.int64)
                slots[: column.shape[0]] = column
                yield slots
        elif p.gather is not None:
            yield from p.gather.pack(batch[0])
        else:
            yield pack_latency(batch, p.period, p.poly_degree)

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        """Encrypt integer inputs of shape (n, *input_shape) under every CRT prime.

        Args:
            xq: Integers in the model's input range.
            progress: Called as ``progress(done, total)`` after each batch of ciphertexts.

        Raises:
            ConfigError, InputRangeError: wrong shape or values outside the input range.
        """
        arr = self.interface.check_integers(xq)
        flat = arr.reshape(arr.shape[0], -1).astype(np.int64)
        n, d = flat.shape
        p = self.params
        size = p.poly_degree if p.mode is Mode.THROUGHPUT else p.inputs_per_ciphertext
        batches = [flat[i:i + size] for i in range(0, n, size)]
        total, done = len(self._kits) * len(batches), 0
        per_batch = d if p.mode is Mode.THROUGHPUT else p.gather.chunks if p.gather is not None else 1
        packed = p.transfer is not Transfer.LATENCY  # then each blob's size is known: packed_size
        out = prime_writer(BATCH, p, n, per_batch * len(batches),
                           {"features": d, "batches": len(batches), "seeded": self.seeded},
                           p.wire_bytes()["request_ciphertext_bytes"] if packed else None)
        for kit in self._kits:  # each ciphertext goes into the frame as it is made: one copy of the request
            for batch in batches:
                for slots in self._slot_vectors(kit, batch):
                    out.add(self._encrypt_slots(kit, slots))
                done += 1
                if progress:
                    progress(done, total)
        return out.finish()

    @property
    def seeded(self) -> bool:
        """Requests are seeded (half the bytes), except THROUGHPUT under ``transfer=LATENCY`` (whole
        ciphertexts, whose residues the server reads straight from the wire)."""
        return self.params.mode is not Mode.THROUGHPUT or self.params.transfer is not Transfer.LATENCY

    def _encrypt_slots(self, kit: PrimeKit, slots: NDArray[Any]) -> bytes:
        """Secret-key encryption; seeded (:attr:`seeded`) or whole (a THROUGHPUT server reads whole
        inputs' residues straight from the wire; seeded ones it loads into SEAL, which expands the
        seed); packed (:func:`~secquant.backends.seal.ciphertext.pack`) unless ``transfer=LATENCY``."""
        pt = kit.encode(slots)
        if self.seeded:
            blob = self._scratch.dump(kit.encryptor.encrypt_symmetric(pt))
        else:
            ct = seal().Ciphertext()
            kit.encryptor.encrypt_symmetric(pt, ct)
            blob = self._scratch.dump(ct)
        return blob if self.params.transfer is Transfer.LATENCY else pack(blob)

    def _decrypt_slots(self, kit: PrimeKit, blob: memoryview) -> tuple[NDArray[np.uint64], int]:
        """The slots of one result ciphertext and its noise budget (bits).

        Raises:
            ModulusOverflowError: the noise budget is exhausted.
        """
        sa = seal()
        ct = self._scratch.load(sa.Ciphertext(), kit.context, blob, "BFV result ciphertext")
        budget = int(kit.decryptor.invariant_noise_budget(ct))
        if budget <= 0:
            raise ModulusOverflowError(
                "a BFV result's noise budget is exhausted, so its decryption cannot be trusted; "
                "raise margin= or use a larger poly_degree", modulus=kit.t)
        pt = sa.Plaintext()
        kit.decryptor.decrypt(ct, pt)
        return np.asarray(kit.encoder.decode_uint64(pt), dtype=np.uint64), budget

    def _unpack(self, values: list[NDArray[np.uint64]], n: int, batches: int) -> NDArray[Any]:
        """Residues of shape (n, d_out) from the slots of one prime's result ciphertexts.

        Raises:
            ConfigError: the result holds the wrong number of ciphertexts.
        """
        p = self.params
        d_out = int(np.prod(self.interface.output_shape))
        if p.mode is Mode.THROUGHPUT:
            if len(values) != batches * d_out:
                raise ConfigError("BFV result holds the wrong number of ciphertexts")
            parts = [np.stack(values[b * d_out:(b + 1) * d_out], axis=1) for b in range(batches)]
        else:
            parts = [unpack_latency(v, d_out, p.poly_degree)[:p.inputs_per_ciphertext] for v in values]
        res = np.concatenate(parts, axis=0)[:n] if parts else np.zeros((0, d_out), np.uint64)
        if res.shape[0] != n:
            raise ConfigError("BFV result holds the wrong number of ciphertexts")
        return res.astype(object)

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        """Decrypt, recombine by CRT and check against the proven output bound (:func:`check_output`).

        Raises:
            ConfigError: malformed payload.
            ModulusOverflowError: noise budget exhausted, or a value outside the proven bound.
        """
        p = self.params
        meta, blobs = unframe_primes(RESULT, payload, p)
        n, batches = int(meta["n"]), int(meta.get("batches", 0))
        residues, budgets = [], []
        for kit, per in zip(self._kits, blobs):
            decrypted = [self._decrypt_slots(kit, blob) for blob in per]
            budgets += [b for _, b in decrypted]
            residues.append(self._unpack([v for v, _ in decrypted], n, batches))
        self.last_noise_budget = min(budgets) if budgets else None
        total = p.total_plain_modulus
        combined = crt_combine(residues, p.plain_moduli) if len(residues) > 1 else residues[0]
        return check_output(self.interface, centered_lift(np.asarray(combined, dtype=object), total), total,
                            p.noise_bound)
