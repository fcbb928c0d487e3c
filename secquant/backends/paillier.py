"""The Paillier backend: exact integer inference on additively encrypted inputs.

One round per affine block (see :mod:`secquant.backends.paillier_plan`):

1. The client encrypts every input integer (DJN randomness by CRT and
   fixed-base tables, :mod:`secquant.backends.paillier_math`).
2. The server computes each output ``y_k = sum_i W_ki x_i + b_k`` as one signed
   multi-exponentiation (Pippenger buckets) plus a plaintext bias, packs the
   outputs of the whole batch into as few ciphertexts as the slot layout allows
   (:mod:`secquant.backends.paillier_packing`, slot width from the proven
   bound of the block's outputs plus guard bits), and re-randomizes each packed
   ciphertext with a fresh ``hs**a``.
3. The client decrypts the packed ciphertexts (CRT) and unpacks the slots.

A 784->10 layer thus costs 784 cheap encryptions, a few thousand server
multiplications and one decryption, instead of 784 full encryptions, 7,840
scalar exponentiations and 10 decryptions with element-wise ``phe``.

Linear and logistic models (affine ops only) run in one round.  Models with
Square or Poly layers need ``interactive=True``: the client decrypts the
pre-activations, applies the integer activation exactly as
:mod:`secquant.quant.intops` does and encrypts the next round's input; what
each party learns is written down in ``protocols/paillier-inference.md``.

Rounds are driven by :meth:`PaillierClient.next_request` (the backend
contract's :func:`~secquant.backends.base.run_rounds`, which ``EncryptedModel``
and the service client use); the server never touches the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.artifact import encode_artifact, read_artifact
from secquant.backends.base import (
    Backend,
    ClientRole,
    Mode,
    Progress,
    ServerRole,
    SimulationReport,
    decode_client_spec,
    encode_client_spec,
)
from secquant.backends.compile import Scheme, register_backend
from secquant.backends.paillier_keys import (
    DEFAULT_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    check_key_bits,
    generate_keypair,
    load_public_key,
    security_bits,
)
from secquant.backends.paillier_math import (
    TABLE_WINDOW_BITS,
    Decryptor,
    Encryptor,
    Randomness,
    array_to_ciphertexts,
    ciphertexts_to_array,
    fresh_randomizer,
    multi_pow,
    pack_ciphertexts,
)
from secquant.backends.paillier_packing import PackingLayout
from secquant.backends.paillier_plan import PaillierClientPlan, PaillierPlan, build_plan
from secquant.errors import ArtifactError, ConfigError, ModulusOverflowError, ParameterError
from secquant.quant.model import ModelInterface, QuantizedModel
from secquant.quant.primitives import coerce_enum

__all__ = ["PaillierBackend", "PaillierClient", "PaillierClientSpec", "PaillierServer", "Randomness"]

REQUEST_TYPE = "secquant.PaillierRequest"
RESPONSE_TYPE = "secquant.PaillierResponse"
_WIRE_VERSION = 1
_OPTIONS = frozenset({"key_bits", "allow_insecure", "interactive", "randomness", "guard_bits", "mode", "private_key"})


@dataclass(frozen=True)
class _Message:
    """A parsed request or response."""

    round: int
    batch: int
    features: int
    ciphertexts: list[Any]
    meta: dict[str, Any]


def _encode(kind: str, public: PaillierPublicKey, meta: dict[str, Any], cts: list[Any]) -> bytes:
    full = {"key": public.fingerprint, **meta}
    return encode_artifact(kind, _WIRE_VERSION, full, {"ct": ciphertexts_to_array(cts, public.ciphertext_bytes)})


def _decode(payload: bytes, kind: str, public: PaillierPublicKey) -> _Message:
    """Parse and validate a wire message.

    Raises:
        ConfigError: malformed, tampered, of another kind, or under another key.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise ConfigError(f"a Paillier payload must be bytes, got {type(payload).__name__}")
    try:
        _, meta, arrays = read_artifact(bytes(payload), kind, (_WIRE_VERSION,))
    except ArtifactError as exc:
        raise ConfigError(f"malformed Paillier payload: {exc}") from exc
    if meta.get("key") != public.fingerprint:
        raise ConfigError("the payload was encrypted under another Paillier key; rebuild the roles from one client")
    try:
        rnd, batch, features = int(meta["round"]), int(meta["batch"]), int(meta["features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Paillier payload header is incomplete: {exc!r}") from exc
    if "ct" not in arrays or rnd < 0 or batch < 1 or features < 1:
        raise ConfigError("Paillier payload lacks ciphertexts or has a non-positive batch or width")
    cts = array_to_ciphertexts(arrays["ct"], public.ciphertext_bytes, public.nsquare)
    return _Message(rnd, batch, features, cts, meta)


def _as_output(values: NDArray[Any], bound: int) -> NDArray[Any]:
    return values.astype(np.int64) if bound < 2**63 else np.asarray(values, dtype=object)


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
        allow_insecure: Whether keys below 2048 bits were admitted at compile time.
    """

    interface: ModelInterface
    plan: PaillierClientPlan
    layouts: tuple[PackingLayout, ...]
    randomness: Randomness
    key_bits: int
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        if len(self.layouts) != self.plan.rounds:
            raise ConfigError(f"{len(self.layouts)} packing layouts for {self.plan.rounds} round(s)")

    def to_bytes(self) -> bytes:
        """A ``secquant.PaillierClientSpec`` artifact (digest-checked)."""
        plan, arrays = self.plan.to_meta()
        meta = {"plan": plan, "layouts": [_layout_meta(lay) for lay in self.layouts],
                "randomness": self.randomness.value, "key_bits": self.key_bits, "allow_insecure": self.allow_insecure}
        return encode_client_spec(Scheme.PAILLIER, self.interface, meta, arrays)

    @classmethod
    def from_bytes(cls, spec: bytes) -> PaillierClientSpec:
        """Parse :meth:`to_bytes`.

        Raises:
            ArtifactError, IntegrityError: not a Paillier client spec, or modified.
            ConfigError: malformed spec.
        """
        interface, meta, arrays = decode_client_spec(Scheme.PAILLIER, spec)
        try:
            layouts = tuple(PackingLayout(**{k: int(str(v)) for k, v in lay.items()}) for lay in meta["layouts"])
            allow = meta["allow_insecure"]
            if not isinstance(allow, bool):
                raise ConfigError("allow_insecure must be a boolean")
            key_bits = check_key_bits(int(meta["key_bits"]), allow_insecure=allow)
            return cls(interface, PaillierClientPlan.from_meta(meta["plan"], arrays), layouts,
                       coerce_enum(meta["randomness"], Randomness, "randomness"), key_bits, allow)
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
        msg = _decode(payload, RESPONSE_TYPE, self.key.public)
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
        msg = _decode(result, RESPONSE_TYPE, self.key.public)
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
        return _encode(REQUEST_TYPE, self.key.public, meta, cts)

    def _open(self, msg: _Message) -> NDArray[Any]:
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
        if values and max(abs(v) for v in values) > block.out_bound:
            raise ModulusOverflowError(
                f"a decrypted value of round {msg.round} exceeds its proven bound {block.out_bound}: the "
                "ciphertext is corrupt or was made under another key",
                layer=block.names[-1], bound=block.out_bound,
            )
        return out

    def _next_from(self, msg: _Message) -> bytes:
        plan = self._spec.plan
        y = self._open(msg)
        step = plan.steps[msg.round]
        a = step.apply(y) if step is not None else y
        return self._request(msg.round + 1, np.asarray(a).reshape(msg.batch, -1))

    def _final(self, msg: _Message) -> NDArray[Any]:
        plan = self._spec.plan
        y = self._open(msg)
        step = plan.steps[msg.round]
        out = step.apply(y) if step is not None else y
        out = np.asarray(out).reshape(msg.batch, *plan.output_shape)
        return _as_output(out, self._spec.interface.output_max_abs)


class PaillierServer(ServerRole):
    """Evaluates affine blocks on ciphertexts with the public key only."""

    def __init__(self, backend: PaillierBackend, public: PaillierPublicKey) -> None:
        self._backend = backend
        self.public = public
        n, n2 = public.n, public.nsquare
        self._rows: list[list[tuple[list[int], list[int], Any]]] = []
        for block in backend.plan.blocks:
            w = np.asarray(block.weight)
            rows = []
            for k in range(block.out_features):
                idx = [int(i) for i in np.flatnonzero(w[k])]
                exps = [int(w[k, i]) for i in idx]
                bias_factor = (1 + n * (int(block.bias[k]) % n)) % n2
                rows.append((idx, exps, bias_factor))
            self._rows.append(rows)

    def evaluate(self, payload: bytes) -> bytes:
        """Map a round's request to its packed, re-randomized response.

        Raises:
            ConfigError: malformed payload, another key, unknown round, or a
                ciphertext count that does not match the model.
        """
        plan = self._backend.plan
        msg = _decode(payload, REQUEST_TYPE, self.public)
        if msg.round >= plan.rounds:
            raise ConfigError(f"request for round {msg.round}, but the model has {plan.rounds} round(s)")
        block = plan.blocks[msg.round]
        if msg.features != block.in_features or len(msg.ciphertexts) != msg.batch * block.in_features:
            raise ConfigError(
                f"round {msg.round} takes {block.in_features} ciphertexts per input; got {len(msg.ciphertexts)} "
                f"for a batch of {msg.batch}"
            )
        n2 = self.public.nsquare
        outputs: list[Any] = []
        d = block.in_features
        for s in range(msg.batch):
            cts = msg.ciphertexts[s * d : (s + 1) * d]
            for idx, exps, bias_factor in self._rows[msg.round]:
                y = multi_pow([cts[i] for i in idx], exps, n2)
                outputs.append(y * bias_factor % n2)
        layout = self._backend.layouts[msg.round]
        packed = []
        for chunk in layout.chunks(outputs):
            c = pack_ciphertexts(list(chunk), layout.slot_bits, n2)
            packed.append(c * fresh_randomizer(self.public, self._backend.randomness) % n2)
        meta = {"round": msg.round, "batch": msg.batch, "features": block.out_features,
                "slot_bits": layout.slot_bits, "slots": layout.slots}
        return _encode(RESPONSE_TYPE, self.public, meta, packed)


@register_backend(Scheme.PAILLIER)
class PaillierBackend(Backend):
    """Paillier compilation of a quantized model.

    Options:
        key_bits: Bits of n (default 3072, about 128-bit security); below 2048
            refused unless ``allow_insecure=True``.
        allow_insecure: Explicit opt-out admitting small keys (tests only).
        interactive: Allow models with Square/Poly layers; the client then
            learns every pre-activation (see ``protocols/paillier-inference.md``).
        randomness: ``"djn"`` (default; ``hs**a`` with a of key_bits/2 bits) or
            ``"full"`` (textbook ``r**n``).
        guard_bits: Spare bits per packed slot above the proven bound (default
            1), so an out-of-bound value is detected instead of aliasing.
        mode: Accepted for API symmetry; Paillier always packs the outputs of
            the whole batch together.
        private_key: Use this key pair instead of generating one per client
            (fixed keys for tests, or reuse of an expensive 3072-bit key).

    Raises:
        ConfigError: unknown option or value; a non-linear model without
            ``interactive=True``.
        ParameterError: key_bits below 2048 without the opt-out, or a bound
            too large for the plaintext space.
        UnsupportedLayerError: an op Paillier cannot evaluate.
    """

    def __init__(self, qm: QuantizedModel, **options: Any) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(f"unknown Paillier option(s) {unknown}; known: {sorted(_OPTIONS)}")
        super().__init__(qm)
        self.allow_insecure = bool(options.get("allow_insecure", False))
        self.private_key: PaillierPrivateKey | None = options.get("private_key")
        default_bits = self.private_key.public.bits if self.private_key is not None else DEFAULT_KEY_BITS
        self.key_bits = check_key_bits(options.get("key_bits", default_bits), allow_insecure=self.allow_insecure)
        if self.private_key is not None:
            if not isinstance(self.private_key, PaillierPrivateKey):
                raise ConfigError("private_key must be a PaillierPrivateKey (see paillier_keys.keypair_from_primes)")
            if self.private_key.public.bits != self.key_bits:
                raise ConfigError(f"private_key has {self.private_key.public.bits} bits but key_bits={self.key_bits}")
        self.interactive = bool(options.get("interactive", False))
        self.randomness = coerce_enum(options.get("randomness", Randomness.DJN), Randomness, "randomness")
        guard = options.get("guard_bits", 1)
        if isinstance(guard, bool) or not isinstance(guard, int) or not 0 <= guard <= 64:
            raise ConfigError(f"guard_bits must be an int in [0, 64], got {guard!r}")
        self.guard_bits = guard
        self.mode = coerce_enum(options.get("mode", Mode.LATENCY), Mode, "mode")
        self.plan: PaillierPlan = build_plan(qm)
        if not self.plan.is_linear and not self.interactive:
            raise ConfigError(
                f"the model has non-linear layers {self.plan.client_op_names()}, which Paillier cannot evaluate "
                "on ciphertexts; pass interactive=True to let the client decrypt the pre-activations, apply them "
                "and re-encrypt, round by round (the client then learns every pre-activation)"
            )
        plaintext_bits = self.key_bits - 1
        layouts = []
        for block in self.plan.blocks:
            try:
                layouts.append(PackingLayout.for_bound(block.out_bound, plaintext_bits, extra_guard_bits=guard))
            except ConfigError as exc:
                raise ParameterError(
                    f"block {list(block.names)} reaches |y| <= {block.out_bound}, too large for a {self.key_bits}-bit "
                    f"Paillier plaintext: {exc}"
                ) from exc
            if block.in_bound.bit_length() + 1 > plaintext_bits:
                raise ConfigError(f"inputs of block {list(block.names)} exceed the plaintext space")
        self.layouts: tuple[PackingLayout, ...] = tuple(layouts)

    # -- roles ---------------------------------------------------------------------
    def client_spec(self) -> bytes:
        """Model interface, round edges and bounds, packing, key size; no affine weight.

        In interactive mode the Square/Poly coefficients are included: the
        client applies them (an inherent leak, see ``protocols/paillier-inference.md``).
        """
        spec = PaillierClientSpec(self.qm.interface(), PaillierClientPlan.of(self.plan), self.layouts,
                                  self.randomness, self.key_bits, self.allow_insecure)
        return spec.to_bytes()

    @classmethod
    def client_from_spec(cls, spec: bytes, *, private_key: PaillierPrivateKey | None = None) -> PaillierClient:
        """A client from :meth:`client_spec` bytes alone, with ``private_key`` or fresh keys.

        Raises:
            ArtifactError, IntegrityError: not a Paillier client spec, or modified.
            ConfigError: malformed spec, or a key of another size.
        """
        parsed = PaillierClientSpec.from_bytes(spec)
        key = private_key or generate_keypair(parsed.key_bits, allow_insecure=parsed.allow_insecure)
        return PaillierClient(parsed, key)

    def client(self) -> PaillierClient:
        """A client with the configured key, or fresh keys from system randomness (built from the spec)."""
        return type(self).client_from_spec(self.client_spec(), private_key=self.private_key)

    def server(self, public_material: bytes) -> PaillierServer:
        """A server from public material only.

        Raises:
            KeyMaterialError: the material is, or carries, a private key.
            ConfigError: malformed material or a key of another size.
        """
        public = load_public_key(public_material, allow_insecure=self.allow_insecure)
        if public.bits != self.key_bits:
            raise ConfigError(f"public key has {public.bits} bits but this model was compiled for {self.key_bits}")
        return PaillierServer(self, public)

    # -- description ---------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """Key size, security, randomness, packing per round and sizes, JSON-ready."""
        k = self.key_bits
        ct_bytes = (2 * k + 7) // 8
        exp_bits = (k + 1) // 2
        table_rows = -(-exp_bits // TABLE_WINDOW_BITS)
        rounds = []
        for block, layout in zip(self.plan.blocks, self.layouts):
            resp = layout.plaintexts_for(block.out_features)
            rounds.append({
                "layers": list(block.names),
                "in_features": block.in_features,
                "out_features": block.out_features,
                "input_bound": str(block.in_bound),
                "output_bound": str(block.out_bound),
                "packing": layout.to_dict(),
                "request_ciphertexts_per_input": block.in_features,
                "response_ciphertexts_per_input": resp,
                "request_bytes_per_input": block.in_features * ct_bytes,
                "response_bytes_per_input": resp * ct_bytes,
            })
        return {
            "scheme": "paillier",
            "key_bits": k,
            "security_bits": security_bits(k),
            "security_reference": "NIST SP 800-57 Part 1 Table 2 (factoring n)",
            "ciphertext_modulus_bits": 2 * k,
            "plaintext": "Z_n, integers read in the centered window (-n/2, n/2)",
            "generator": "g = n + 1",
            "randomness": {
                "method": self.randomness.value,
                "client": ("hs**a, a uniform of ceil(k/2) bits (DJN 2010), mod p**2 and q**2 by CRT with "
                           f"{TABLE_WINDOW_BITS}-bit fixed-base tables" if self.randomness is Randomness.DJN
                           else "r**n for uniform r, as u**p mod p**2 and u**q mod q**2 (CRT)"),
                "exponent_bits": exp_bits if self.randomness is Randomness.DJN else k,
                "server_rerandomization": "each packed response ciphertext times a fresh hs**a (DJN) or r**n",
                "source": "secrets (operating-system CSPRNG)",
            },
            "decryption": "CRT (two half-size exponentiations per ciphertext)",
            "interactive": self.interactive,
            "rounds": len(rounds),
            "client_ops": self.plan.client_op_names(),
            "round_details": rounds,
            "guard_bits": self.guard_bits,
            "mode": self.mode.value,
            "sizes": {
                "ciphertext_bytes": ct_bytes,
                "public_key_bytes": (k + 7) // 8 + ct_bytes,
                "private_key_bytes": 2 * ((k // 2 + 7) // 8),
                "client_table_bytes": (2 * table_rows * 2**TABLE_WINDOW_BITS * ct_bytes // 2
                                       if self.randomness is Randomness.DJN else 0),
                "request_bytes_per_input": rounds[0]["request_bytes_per_input"],
                "response_bytes_per_input": sum(r["response_bytes_per_input"] for r in rounds),
            },
            "output_bound": str(self.qm.bounds().output.max_abs),
        }

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Exact integer run of the rounds, with the packing-overflow check of every slot."""
        qm = self.qm
        arr = qm._batched(np.asarray(xq))
        reference = qm.forward_int(arr)
        x = self.plan.pre.apply(arr) if self.plan.pre is not None else arr
        reasons: list[str] = []
        rounds = []
        for r, (block, layout) in enumerate(zip(self.plan.blocks, self.layouts)):
            y = block.apply(np.asarray(x).reshape(len(arr), -1))
            flat = [int(v) for v in np.asarray(y).reshape(-1)]
            overflow = layout.overflows(flat)
            beyond = sum(1 for v in flat if abs(v) > block.out_bound)
            if overflow:
                reasons.append(f"round {r}: {len(overflow)} value(s) overflow their {layout.slot_bits}-bit slots")
            if beyond:
                reasons.append(f"round {r}: {beyond} value(s) exceed the proven bound {block.out_bound}")
            rounds.append({
                "layers": list(block.names),
                "max_abs": max((abs(v) for v in flat), default=0),
                "bound": str(block.out_bound),
                "slot_bits": layout.slot_bits,
                "slot_headroom_bits": layout.slot_bits - 1 - max((abs(v) for v in flat), default=0).bit_length(),
                "overflowing_slots": len(overflow),
                "response_ciphertexts": layout.plaintexts_for(len(flat)),
            })
            step = self.plan.steps[r]
            x = step.apply(y) if step is not None else y
        out = np.asarray(x).reshape(len(arr), *self.plan.output_shape)
        if not np.array_equal(np.asarray(out, dtype=object), np.asarray(reference, dtype=object)):
            reasons.append("the Paillier rounds disagree with qm.forward_int (a bug: please report it)")
        return SimulationReport(ok=not reasons, reasons=reasons, output=_as_output(out, qm.bounds().output.max_abs),
                                details={"rounds": rounds, "key_bits": self.key_bits})
