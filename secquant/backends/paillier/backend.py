"""The Paillier backend: exact integer inference on additively encrypted inputs.

One round per affine block (see :mod:`~secquant.backends.paillier.plan`):

1. The client encrypts every input integer (DJN randomness by CRT and
   fixed-base tables, :mod:`~secquant.backends.paillier.crypto`).
2. The server computes each output ``y_k = sum_i W_ki x_i + b_k`` as one signed
   multi-exponentiation (Pippenger buckets) plus a plaintext bias, packs the
   outputs of the whole batch into as few ciphertexts as the slot layout allows
   (:mod:`~secquant.backends.paillier.packing`, slot width from the proven
   bound of the block's outputs plus guard bits), and re-randomizes each packed
   ciphertext with the server's own fresh ``r**n`` (:mod:`~secquant.backends.paillier.server`);
   under a noisy release policy it first adds discrete Gaussian noise to
   the encrypted outputs.
3. The client decrypts the packed ciphertexts (CRT) and unpacks the slots
   (:mod:`~secquant.backends.paillier.client`).

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

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from secquant.backends.base import Backend, SimulationReport
from secquant.backends.compile import Scheme, register_backend
from secquant.backends.paillier.client import PaillierClient, PaillierClientSpec
from secquant.backends.paillier.crypto import TABLE_WINDOW_BITS, Randomness
from secquant.backends.paillier.keys import (
    PaillierPrivateKey,
    generate_keypair,
    load_public_key,
    security_bits,
)
from secquant.backends.paillier.options import PaillierOptions
from secquant.backends.paillier.packing import PackingLayout
from secquant.backends.paillier.plan import (
    AffineBlock,
    PaillierClientPlan,
    PaillierPlan,
    build_plan,
)
from secquant.backends.paillier.server import PaillierServer
from secquant.backends.paillier.wire import as_output
from secquant.backends.release import release_details
from secquant.errors import ConfigError, ParameterError
from secquant.quant.model import QuantizedModel

__all__ = ["PaillierBackend"]


def _layouts(plan: PaillierPlan, key_bits: int, guard_bits: int, noise: int = 0) -> tuple[PackingLayout, ...]:
    """The slot layout of each round's response, from the block's proven output bound.

    ``noise`` (the release policy's largest |noise|) widens the last round's bound.

    Raises:
        ParameterError: a bound too large for the plaintext space.
        ConfigError: a block's inputs exceed the plaintext space.
    """
    plaintext_bits = key_bits - 1
    layouts = []
    for r, block in enumerate(plan.blocks):
        bound = int(block.out_bound) + (noise if r == len(plan.blocks) - 1 else 0)
        try:
            layouts.append(PackingLayout.for_bound(bound, plaintext_bits, extra_guard_bits=guard_bits))
        except ConfigError as exc:
            raise ParameterError(
                f"block {list(block.names)} reaches |y| <= {block.out_bound}, too large for a {key_bits}-bit "
                f"Paillier plaintext: {exc}"
            ) from exc
        if block.in_bound.bit_length() + 1 > plaintext_bits:
            raise ConfigError(f"inputs of block {list(block.names)} exceed the plaintext space")
    return tuple(layouts)


@register_backend(Scheme.PAILLIER)
class PaillierBackend(Backend):
    """Paillier compilation of a quantized model.

    Args:
        qm: The quantized model.
        options: The user's choices (:class:`~.options.PaillierOptions`; None: the defaults).

    Raises:
        ConfigError: an invalid option; a non-linear model without
            ``interactive=True``.
        ParameterError: key_bits below 2048 without the opt-out, or a bound
            too large for the plaintext space.
        UnsupportedLayerError: an op Paillier cannot evaluate.
    """

    options_type: ClassVar[type[PaillierOptions]] = PaillierOptions
    options: PaillierOptions

    def __init__(self, qm: QuantizedModel, options: PaillierOptions | None = None) -> None:
        super().__init__(qm, options)
        self.plan: PaillierPlan = build_plan(qm)
        if not self.plan.is_linear and not self.options.interactive:
            raise ConfigError(
                f"the model has non-linear layers {self.plan.client_op_names()}, which Paillier cannot evaluate "
                "on ciphertexts; pass interactive=True to let the client decrypt the pre-activations, apply them "
                "and re-encrypt, round by round (the client then learns every pre-activation)"
            )
        noise = self.options.noise_bound
        if noise and self.plan.steps[-1] is not None:
            from secquant.protocol.errors import ReleaseUnsupportedError

            raise ReleaseUnsupportedError(
                f"the model ends with client-side ops {self.plan.client_op_names()} after its last affine layer, so "
                "noise the server adds would pass through them; release full logits for this model")
        self.layouts: tuple[PackingLayout, ...] = _layouts(self.plan, self.key_bits, self.options.guard_bits, noise)

    @property
    def key_bits(self) -> int:
        """Bits of n."""
        return self.options.bits

    @property
    def randomness(self) -> Randomness:
        """Encryption randomness."""
        return self.options.randomness

    # -- roles ---------------------------------------------------------------------
    def client_spec(self) -> bytes:
        """Model interface, round edges and bounds, packing, key size; no affine weight.

        In interactive mode the Square/Poly coefficients are included: the
        client applies them (an inherent leak, see ``protocols/paillier-inference.md``).
        """
        release = self.options.release.to_json() if self.options.noise_bound else None
        spec = PaillierClientSpec(self.qm.interface(), PaillierClientPlan.of(self.plan), self.layouts,
                                  self.randomness, self.key_bits, self.options.allow_insecure,
                                  release, self.options.noise_bound)
        return spec.to_bytes()

    @classmethod
    def client_from_spec(cls, spec: bytes, *, private_key: PaillierPrivateKey | None = None,
                         allow_insecure: bool = False) -> PaillierClient:
        """A client from :meth:`client_spec` bytes alone, with ``private_key`` or fresh keys.

        The key size comes from the spec (the server's packing depends on it),
        but whether a key below 2048 bits is admitted is the caller's own
        ``allow_insecure``, never the spec's: a spec is data from the network.

        Raises:
            ArtifactError, IntegrityError: not a Paillier client spec, or modified.
            ConfigError: malformed spec, or a key of another size.
            ParameterError: the spec asks for a key below 2048 bits and ``allow_insecure`` is False.
        """
        parsed = PaillierClientSpec.from_bytes(spec, allow_insecure=allow_insecure)
        key = private_key or generate_keypair(parsed.key_bits, allow_insecure=allow_insecure)
        return PaillierClient(parsed, key)

    def client(self) -> PaillierClient:
        """A client with the configured key, or fresh keys from system randomness (built from the spec).

        Local: the options (and their ``allow_insecure``) are the caller's own.
        """
        return type(self).client_from_spec(self.client_spec(), private_key=self.options.private_key,
                                           allow_insecure=self.options.allow_insecure)

    def server(self, public_material: bytes) -> PaillierServer:
        """A server from public material only.

        Raises:
            KeyMaterialError: the material is, or carries, a private key.
            ConfigError: malformed material or a key of another size.
        """
        public = load_public_key(public_material, allow_insecure=self.options.allow_insecure)
        if public.bits != self.key_bits:
            raise ConfigError(f"public key has {public.bits} bits but this model was compiled for {self.key_bits}")
        return PaillierServer(self.plan, self.layouts, public, release=self.options.release)

    # -- description ---------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """Key size, security, randomness, packing per round and sizes, JSON-ready."""
        k = self.key_bits
        ct_bytes = (2 * k + 7) // 8
        rounds = [_round_details(block, layout, ct_bytes) for block, layout in zip(self.plan.blocks, self.layouts)]
        return {
            "scheme": "paillier",
            "key_bits": k,
            "security_bits": security_bits(k),
            "security_reference": "NIST SP 800-57 Part 1 Table 2 (factoring n)",
            "ciphertext_modulus_bits": 2 * k,
            "plaintext": "Z_n, integers read in the centered window (-n/2, n/2)",
            "generator": "g = n + 1",
            "randomness": _randomness_details(self.randomness, k),
            "decryption": "CRT (two half-size exponentiations per ciphertext)",
            "interactive": self.options.interactive,
            "rounds": len(rounds),
            "release": release_details(self.options.release, "the encrypted outputs before packing"),
            "client_ops": self.plan.client_op_names(),
            "round_details": rounds,
            "guard_bits": self.options.guard_bits,
            "mode": self.options.mode.value,
            "sizes": _sizes(self.randomness, k, rounds),
            "output_bound": str(self.qm.bounds().output.max_abs),
        }

    def simulate(self, xq: NDArray[Any]) -> SimulationReport:
        """Exact integer run of the rounds, with the packing-overflow check of every slot."""
        qm = self.qm
        arr = qm.interface().batched(np.asarray(xq))
        reference = qm.forward_int(arr)
        x = self.plan.pre.apply(arr) if self.plan.pre is not None else arr
        reasons: list[str] = []
        rounds = []
        for r, (block, layout) in enumerate(zip(self.plan.blocks, self.layouts)):
            y = block.apply(np.asarray(x).reshape(len(arr), -1))
            rounds.append(_simulated_round(r, block, layout, y, reasons))
            step = self.plan.steps[r]
            x = step.apply(y) if step is not None else y
        out = np.asarray(x).reshape(len(arr), *self.plan.output_shape)
        if not np.array_equal(np.asarray(out, dtype=object), np.asarray(reference, dtype=object)):
            reasons.append("the Paillier rounds disagree with qm.forward_int (a bug: please report it)")
        return SimulationReport(ok=not reasons, reasons=reasons, output=as_output(out, qm.bounds().output.max_abs),
                                details={"rounds": rounds, "key_bits": self.key_bits})


def _round_details(block: AffineBlock, layout: PackingLayout, ct_bytes: int) -> dict[str, Any]:
    """One round of :meth:`PaillierBackend.parameters`: edges, bounds, packing and bytes."""
    resp = layout.plaintexts_for(block.out_features)
    return {
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
    }


def _randomness_details(randomness: Randomness, k: int) -> dict[str, Any]:
    """How encryption and re-randomization draw their randomness, for a ``k``-bit key."""
    djn = randomness is Randomness.DJN
    return {
        "method": randomness.value,
        "client": ("hs**a, a uniform of ceil(k/2) bits (DJN 2010), mod p**2 and q**2 by CRT with "
                   f"{TABLE_WINDOW_BITS}-bit fixed-base tables" if djn
                   else "r**n for uniform r, as u**p mod p**2 and u**q mod q**2 (CRT)"),
        "exponent_bits": (k + 1) // 2 if djn else k,
        "server_rerandomization": ("each packed response ciphertext times r**n mod n**2 for a fresh uniform r "
                                   "from secrets: the server's own randomness, which no value the client sends "
                                   "(hs included) can cancel"),
        "source": "secrets (operating-system CSPRNG)",
    }


def _sizes(randomness: Randomness, k: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Bytes of ciphertexts, keys, the client's fixed-base tables and the messages per input."""
    ct_bytes = (2 * k + 7) // 8
    table_rows = -(-((k + 1) // 2) // TABLE_WINDOW_BITS)
    return {
        "ciphertext_bytes": ct_bytes,
        "public_key_bytes": (k + 7) // 8 + ct_bytes,
        "private_key_bytes": 2 * ((k // 2 + 7) // 8),
        "client_table_bytes": (2 * table_rows * 2**TABLE_WINDOW_BITS * ct_bytes // 2
                               if randomness is Randomness.DJN else 0),
        "request_bytes_per_input": rounds[0]["request_bytes_per_input"],
        "response_bytes_per_input": sum(r["response_bytes_per_input"] for r in rounds),
    }


def _simulated_round(r: int, block: AffineBlock, layout: PackingLayout, y: NDArray[Any],
                     reasons: list[str]) -> dict[str, Any]:
    """Check round ``r``'s exact outputs ``y`` against its slots and bound; problems go to ``reasons``."""
    flat = [int(v) for v in np.asarray(y).reshape(-1)]
    overflow = layout.overflows(flat)
    beyond = sum(1 for v in flat if abs(v) > block.out_bound)
    if overflow:
        reasons.append(f"round {r}: {len(overflow)} value(s) overflow their {layout.slot_bits}-bit slots")
    if beyond:
        reasons.append(f"round {r}: {beyond} value(s) exceed the proven bound {block.out_bound}")
    top = max((abs(v) for v in flat), default=0)
    return {
        "layers": list(block.names),
        "max_abs": top,
        "bound": str(block.out_bound),
        "slot_bits": layout.slot_bits,
        "slot_headroom_bits": layout.slot_bits - 1 - top.bit_length(),
        "overflowing_slots": len(overflow),
        "response_ciphertexts": layout.plaintexts_for(len(flat)),
    }
