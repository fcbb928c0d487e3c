"""Release noise an encrypted backend adds to its outputs, one definition for Paillier, BFV and CKKS.

A server that holds only ciphertexts can still apply one release policy of
:mod:`secquant.dp.release`: discrete Gaussian noise on whole output steps
(``DiscreteGaussianLogits(σ, resolution_bits=0)``).  It adds an integer
``e`` per output to the encrypted result (Paillier: ``(1+n)**e``; BFV: the
slots ``e mod t_i`` under every CRT prime, the same ``e``; CKKS: ``e`` at the
output scale), so the client decrypts ``y + e``.  Rounding, probabilities and
labels need a comparison circuit and are refused.

The noise is bounded: the sampler of :mod:`secquant.dp.samplers` truncates its
proposals, so ``|e| <= noise_bound(policy) = ceil(42σ) + 2`` for every draw,
and a backend widens its output window (and the client its output check) by
exactly that much.  Draws come from :func:`~secquant.dp.samplers.secure_generator`
(keyed from ``secrets`` per call); nothing here can be seeded from the network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError

__all__ = ["NOISE_TAIL_SIGMAS", "draw_noise", "noise_bound", "release_details", "release_policy"]

#: |noise| <= ceil(NOISE_TAIL_SIGMAS * sigma) + 2 for every draw of the dp sampler
#: (it truncates its proposals at sigma + 40 sigma + 1), so outputs are sized for it.
NOISE_TAIL_SIGMAS = 42


def release_policy(value: Any, scheme: str) -> Any:
    """The release policy an encrypted server of ``scheme`` can apply, from a policy or its JSON.

    Args:
        value: None (full logits), a :mod:`secquant.dp.release` policy, or its JSON.
        scheme: The scheme's name, for the error message.

    Returns:
        ``FullLogits()`` or a ``DiscreteGaussianLogits`` with ``resolution_bits == 0``.

    Raises:
        ReleaseUnsupportedError: rounding, probabilities, labels, or a noise grid other than one step.
        ConfigError: not a release policy.
    """
    from secquant.dp.release import RELEASE_POLICY_TYPES, DiscreteGaussianLogits, FullLogits, policy_from_json
    from secquant.protocol.errors import ReleaseUnsupportedError

    if value is None:
        return FullLogits()
    policy: Any = value if isinstance(value, RELEASE_POLICY_TYPES) else policy_from_json(value)
    if isinstance(policy, FullLogits):
        return policy
    if isinstance(policy, DiscreteGaussianLogits) and policy.resolution_bits == 0:
        return policy
    raise ReleaseUnsupportedError(
        f"{scheme} cannot apply the release policy {policy.label!r} to a ciphertext: it only adds, so it can add "
        "noise (discrete Gaussian with resolution_bits=0, e.g. `--release gaussian:4`) but cannot round, take a "
        "softmax or an argmax; serve full logits or noise, or use the plain backend"
    )


def noise_bound(policy: Any) -> int:
    """Largest |noise| the policy adds to one output (0 without noise), in output steps."""
    sigma = getattr(policy, "grid_sigma", None)
    return 0 if sigma is None else math.ceil(NOISE_TAIL_SIGMAS * float(sigma)) + 2


def draw_noise(policy: Any, size: int) -> NDArray[np.int64]:
    """``size`` fresh noise integers of ``policy``, keyed from ``secrets``; each within :func:`noise_bound`.

    Raises:
        ConfigError: a draw past the bound (a sampler bug; never expected).
    """
    from secquant.dp.samplers import secure_generator

    noise = np.asarray(policy.apply(np.zeros(int(size), dtype=np.int64), secure_generator()), dtype=np.int64)
    if noise.size and int(np.max(np.abs(noise))) > noise_bound(policy):
        raise ConfigError("a noise draw exceeded its proven bound (a bug: please report it)")
    return noise


def release_details(policy: Any, where: str) -> dict[str, Any]:
    """JSON for ``em.parameters()["release"]``: the policy, its bound, and where the server adds it."""
    bound = noise_bound(policy)
    out: dict[str, Any] = {"policy": policy.to_json(), "noise_bound": bound}
    if bound:
        out["noise"] = (f"discrete Gaussian per output, drawn by the server (dp sampler on a secrets-keyed Philox "
                        f"stream) and added to {where}")
    return out


def modulus_with_noise(qm: Any, noise: int) -> int:
    """The modulus a model needs once its outputs may move by ``noise`` steps: every layer's
    window (``qm.modulus_needed``), and the outputs' ``[lo - noise, hi + noise]``."""
    from secquant.quant.primitives import modulus_needed

    out = qm.bounds().output
    lo, hi = int(np.min(out.lo)) - int(noise), int(np.max(out.hi)) + int(noise)
    return max(int(qm.modulus_needed), int(modulus_needed(lo, hi) or 0))


def check_modulus_with_noise(qm: Any, modulus: int, noise: int) -> None:
    """Refuse a modulus that holds the model but not its outputs plus release noise.

    Raises:
        ModulusOverflowError: every layer fits, but ``output + noise`` does not; names
            the output layer and the modulus needed.
    """
    from secquant.errors import ModulusOverflowError

    qm.bounds().check(modulus)
    needed = modulus_with_noise(qm, noise)
    if modulus < needed:
        out = qm.bounds().output
        raise ModulusOverflowError(
            f"the outputs (layer {out.name!r}, |integer| <= {out.max_abs}) plus release noise of up to {noise} "
            f"steps need a modulus of at least {needed}; {modulus} is too small: use a larger plaintext modulus "
            "or less noise", layer=out.name, bound=int(out.max_abs) + int(noise), modulus=modulus,
            modulus_needed=needed)
