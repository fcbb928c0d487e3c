"""The Paillier client role: the key owner encrypts, decrypts and applies activations between rounds.

Its :class:`PaillierClientSpec` holds the model interface, the block edges and
bounds, the packing of each response and the key size, never an affine
weight; in interactive mode it also holds the Square/Poly coefficients, which
the client applies (the documented leak, ``protocols/paillier-inference.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import (
    ClientRole,
    Progress,
    Scheme,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.paillier.crypto import Decryptor, Encryptor, Randomness
from secquant.backends.paillier.keys import PaillierPrivateKey, check_key_bits
from secquant.backends.paillier.packing import PackingLayout
from secquant.backends.paillier.plan import PaillierClientPlan
from secquant.backends.paillier.wire import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    Message,
    as_output,
    decode,
    encode,
)
from secquant.errors import ConfigError, ModulusOverflowError, ParameterError
from secquant.quant.model import ModelInterface
from secquant.quant.primitives import coerce_enum

__all__ = ["PaillierClient", "PaillierClientSpec"]


@dataclass(frozen=True, eq=False)
class PaillierClientSpec:
    """Everything a Paillier client needs, and nothing of the server's affine weights.

    Attributes:
        interface: Shapes, input quantization, output scale and bound.
        plan: Block edges and the client steps (Square/Poly coefficients in
            interactive mode, which the client must apply).
        layouts: Slot packing of each round's response.
        randomness: Encryption randomness.
        key_bits: Bits of n.
        allow_insecure: Whether keys below 2048 bits were admitted at compile time
            (informative only: a client decides that with its own options).
        release: JSON of the server's release policy when it adds noise, else None.
        noise_bound: Largest |noise| the server adds to a final output (0 without noise).
    """

    interface: ModelInterface
    plan: PaillierClientPlan
    layouts: tuple[PackingLayout, ...]
    randomness: Randomness
    key_bits: int
    allow_insecure: bool = False
    release: dict[str, Any] | None = None
    noise_bound: int = 0

    def __post_init__(self) -> None:
        if len(self.layouts) != self.plan.rounds:
            raise ConfigError(f"{len(self.layouts)} packing layouts for {self.plan.rounds} round(s)")
        if isinstance(self.noise_bound, bool) or not isinstance(self.noise_bound, int) or self.noise_bound < 0:
            raise ConfigError(f"noise_bound must be an int >= 0, got {self.noise_bound!r}")

    def to_bytes(self) -> bytes:
        """A ``secquant.PaillierClientSpec`` artifact (digest-checked); byte-identical to before without noise."""
        plan, arrays = self.plan.to_meta()
        meta: dict[str, Any] = {"plan": plan, "layouts": [_layout_meta(lay) for lay in self.layouts],
                                "randomness": self.randomness.value, "key_bits": self.key_bits,
                                "allow_insecure": self.allow_insecure}
        if self.noise_bound:
            meta["release"] = {"policy": self.release, "noise_bound": self.noise_bound}
        return encode_client_spec(Scheme.PAILLIER, self.interface, meta, arrays)

    @classmethod
    def from_bytes(cls, spec: bytes, *, allow_insecure: bool = False) -> PaillierClientSpec:
        """Parse :meth:`to_bytes`.

        Args:
            spec: The spec bytes (data from the network).
            allow_insecure: The reader's own opt-out for keys below 2048 bits;
                the spec's ``allow_insecure`` field is never trusted.

        Raises:
            ArtifactError, IntegrityError: not a Paillier client spec, or modified.
            ConfigError: malformed spec.
            ParameterError: the spec's key is below 2048 bits and ``allow_insecure`` is False.
        """
        interface, meta, arrays = decode_client_spec(Scheme.PAILLIER, spec)
        try:
            layouts = tuple(PackingLayout(**{k: int(str(v)) for k, v in lay.items()}) for lay in meta["layouts"])
            allow = meta["allow_insecure"]
            if not isinstance(allow, bool):
                raise ConfigError("allow_insecure must be a boolean")
            key_bits = check_key_bits(int(meta["key_bits"]), allow_insecure=allow_insecure)
            release = meta.get("release") or {}
            return cls(interface, PaillierClientPlan.from_meta(meta["plan"], arrays), layouts,
                       coerce_enum(meta["randomness"], Randomness, "randomness"), key_bits, allow,
                       release.get("policy"), int(release.get("noise_bound", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, (ConfigError, ParameterError)):
                raise
            raise ConfigError(f"malformed Paillier client spec: {exc!r}") from exc


def _layout_meta(layout: PackingLayout) -> dict[str, Any]:
    return {"slot_bits": layout.slot_bits, "slots": layout.slots, "value_bound": str(layout.value_bound),
            "guard_bits": layout.guard_bits, "plaintext_bits": layout.plaintext_bits}


class PaillierClient(ClientRole):
    """The key owner: encrypts inputs, decrypts results, applies activations between rounds.

    Attributes:
        key: The private key (never leaves this object except through
            :meth:`export_private_key`).
    """

    def __init__(self, spec: PaillierClientSpec, key: PaillierPrivateKey) -> None:
        if key.public.bits != spec.key_bits:
            raise ConfigError(f"private key has {key.public.bits} bits but the model was compiled for {spec.key_bits}")
        self._spec = spec
        self.key = key
        self._encryptor = Encryptor(key, spec.randomness)
        self._decryptor = Decryptor(key)

    # -- the ClientRole contract ------------------------------------------------
    def public_material(self) -> bytes:
        """The public key (n and hs) as a digest-checked npz artifact; never the primes."""
        return self.key.public.to_bytes()

    def encrypt(self, xq: NDArray[Any], progress: Progress | None = None) -> bytes:
        """Encrypt integer inputs of shape (n, *input_shape) into the round-0 request.

        ``progress(done, total)`` is called once the batch is encrypted.

        Raises:
            ConfigError: wrong shape or non-integer dtype.
            InputRangeError: an integer lies outside the model's input range.
        """
        arr = self._spec.interface.check_integers(xq)
        plan = self._spec.plan
        values = plan.pre.apply(arr) if plan.pre is not None else arr
        request = self._request(0, np.asarray(values).reshape(len(arr), -1))
        if progress is not None:
            progress(len(arr), len(arr))
        return request

    def decrypt(self, payload: bytes) -> NDArray[Any]:
        """Decrypt the final response to centered integers of shape (n, *output_shape).

        Raises:
            ConfigError: malformed payload, or an intermediate response (call
                :meth:`next_request` and send it to the server first).
            ModulusOverflowError: a decrypted value exceeds its proven bound
                (corruption or a wrong key).
        """
        plan = self._spec.plan
        msg = decode(payload, RESPONSE_TYPE, self.key.public)
        if msg.round < plan.rounds - 1:
            raise ConfigError(
                f"this is the result of round {msg.round + 1} of {plan.rounds} (interactive mode); call "
                "client.next_request(result) and send it to the server first"
            )
        return self._final(msg)

    # -- interactive rounds ------------------------------------------------------
    def next_request(self, result: bytes) -> bytes | None:
        """The request of the next round, or None when ``result`` is the final one.

        The client decrypts the pre-activations of round r, applies the
        activation ops, and encrypts the input of round r + 1.

        Raises:
            ConfigError: malformed payload.
        """
        msg = decode(result, RESPONSE_TYPE, self.key.public)
        if msg.round >= self._spec.plan.rounds - 1:
            return None
        return self._next_from(msg)

    def precompute(self, count: int) -> None:
        """Make ``count`` encryption randomizers ahead of time (offline phase).

        Each later encryption then costs one multiplication; use it when the
        client has idle time before the input is known.
        """
        self._encryptor.precompute(count)

    def export_private_key(self, path: str) -> None:
        """Write the private key with mode 0600 (an npz artifact; keep it secret)."""
        self.key.write(path)

    # -- internals ------------------------------------------------------------------
    def _request(self, rnd: int, values: NDArray[Any]) -> bytes:
        block = self._spec.plan.blocks[rnd]
        if values.shape[1] != block.in_features:
            raise ConfigError(f"round {rnd} takes {block.in_features} values per input, got {values.shape[1]}")
        cts = self._encryptor.encrypt([int(v) for v in values.reshape(-1)])
        meta = {"round": rnd, "batch": int(values.shape[0]), "features": block.in_features}
        return encode(REQUEST_TYPE, self.key.public, meta, cts)

    def _open(self, msg: Message) -> NDArray[Any]:
        """Decrypt and unpack a response to shape (batch, out_features)."""
        plan, backend = self._spec.plan, self._spec
        if msg.round >= plan.rounds:
            raise ConfigError(f"response for round {msg.round}, but the model has {plan.rounds} round(s)")
        block = plan.blocks[msg.round]
        layout = backend.layouts[msg.round]
        total = msg.batch * block.out_features
        if (msg.features != block.out_features or len(msg.ciphertexts) != layout.plaintexts_for(total)
                or msg.meta.get("slot_bits") != layout.slot_bits or msg.meta.get("slots") != layout.slots):
            raise ConfigError("response shape or packing does not match this model's layout (compiled differently?)")
        n = self.key.public.n
        values: list[int] = []
        for i, residue in enumerate(self._decryptor.decrypt(msg.ciphertexts)):
            values.extend(layout.decode_mod(int(residue), int(n), min(layout.slots, total - i * layout.slots)))
        out = np.asarray(values, dtype=object).reshape(msg.batch, block.out_features)
        bound = block.out_bound + (backend.noise_bound if msg.round == plan.rounds - 1 else 0)
        if values and max(abs(v) for v in values) > bound:
            raise ModulusOverflowError(
                f"a decrypted value of round {msg.round} exceeds its proven bound {bound}: the "
                "ciphertext is corrupt or was made under another key",
                layer=block.names[-1], bound=bound,
            )
        return out

    def _next_from(self, msg: Message) -> bytes:
        plan = self._spec.plan
        y = self._open(msg)
        step = plan.steps[msg.round]
        a = step.apply(y) if step is not None else y
        return self._request(msg.round + 1, np.asarray(a).reshape(msg.batch, -1))

    def _final(self, msg: Message) -> NDArray[Any]:
        plan = self._spec.plan
        y = self._open(msg)
        step = plan.steps[msg.round]
        out = step.apply(y) if step is not None else y
        out = np.asarray(out).reshape(msg.batch, *plan.output_shape)
        return as_output(out, self._spec.interface.output_max_abs + self._spec.noise_bound)
