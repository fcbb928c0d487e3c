"""What the extraction attacker can do: send float inputs, read what the client API returns.

:class:`QueryOracle` is the whole attack surface: the public model interface
(input quantization, output shape and scales: what a client spec publishes)
and ``query(x)``, which returns the release of one output row per input row
and counts every row as one query.  :class:`LocalOracle` plays the server
locally: ``qm.forward_int`` on the quantized inputs, then the release policy
on the integer outputs, then dequantization, as the service's client would
return it.  A real service client can stand in for it by providing the same
three members (``interface``, ``form``, ``query``).

A policy stated in logits is applied to integer outputs output by output: with
``2**b_c <= output_scale_c`` the largest power of two not above output ``c``'s
steps per logit, output ``c`` gets ``policy.scaled(b_c)`` (same (ε, δ); one
policy unit is between 1/2 and 1 logit there).  Rounded probabilities need a
softmax, so they are applied to the dequantized logits, as a plaintext API would.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.dp.release import ReleaseForm, ReleasePolicy, RoundedProbabilities
from secquant.errors import ConfigError

__all__ = ["LocalOracle", "QueryOracle", "policy_in_steps"]


class QueryOracle(Protocol):
    """The attacker's view of a deployed model."""

    @property
    def interface(self) -> Any:
        """The public :class:`ModelInterface` (input quantization, output shape and scales)."""

    @property
    def form(self) -> ReleaseForm:
        """What ``query`` returns: logits, probabilities or labels."""

    def query(self, x: ArrayLike) -> NDArray[Any]:
        """Released outputs for float inputs ``(n, *input_shape)``; costs ``n`` queries."""


def _shifts(output_scale: NDArray[np.float64], classes: int) -> list[int]:
    scale = np.broadcast_to(np.asarray(output_scale, dtype=np.float64).reshape(-1), (classes,))
    return [math.floor(math.log2(s)) for s in scale]


def policy_in_steps(policy: ReleasePolicy, output_scale: NDArray[np.float64], classes: int) -> list[ReleasePolicy]:
    """One policy per output, re-expressed from logits into that output's integer steps.

    Raises:
        ConfigError: the model has under ``2**resolution_bits`` steps per logit, so
            the policy's grid is finer than its outputs (give a coarser policy).
    """
    out = []
    for c, b in enumerate(_shifts(output_scale, classes)):
        p = policy.scaled(b)
        if getattr(p, "resolution_bits", 0) > 0:
            raise ConfigError(f"{policy.label}: output {c} has about 2**{b} steps per logit, fewer than the "
                              f"policy's grid of 2**-{policy.resolution_bits} logits; lower its resolution")  # type: ignore[union-attr]
        out.append(p)
    return out


class LocalOracle:
    """A quantized model behind a release policy, queried in process.

    Args:
        qm: The victim (``QuantizedModel``); only ``interface()`` and ``forward_int`` are used.
        policy: The release policy, in logits.
        seed: Seeds the policy's noise, >= 0.
    """

    def __init__(self, qm: Any, policy: ReleasePolicy, seed: int = 0) -> None:
        self._qm = qm
        self._iface = qm.interface()
        self.policy = policy
        self.queries = 0
        self._rng = np.random.default_rng([int(seed), 0x0E7])
        classes = int(np.prod(self._iface.output_shape))
        self._per_output = (None if isinstance(policy, RoundedProbabilities)
                            else policy_in_steps(policy, self._iface.output_scale, classes))

    @property
    def interface(self) -> Any:
        """The victim's public interface (``qm.interface()``)."""
        return self._iface

    @property
    def form(self) -> ReleaseForm:
        """What the policy releases."""
        return self.policy.form

    def query(self, x: ArrayLike) -> NDArray[Any]:
        """Released outputs for ``x``: logits (float), probabilities, or labels (int).

        Raises:
            ConfigError: inputs of the wrong shape.
        """
        iface = self._iface
        u = iface.quantize_input(np.asarray(x, dtype=np.float64))
        y = np.asarray(self._qm.forward_int(u)).reshape(len(u), -1)
        self.queries += len(u)
        if self._per_output is None:
            return self.policy.release(iface.dequantize_output(y), self._rng)
        if self.form is ReleaseForm.LABELS:
            return self.policy.apply(y, self._rng)
        released = np.empty(y.shape, dtype=np.int64)
        for c, p in enumerate(self._per_output):
            released[:, c] = p.apply(y[:, c : c + 1], self._rng)[:, 0]
        return np.asarray(iface.dequantize_output(released), dtype=np.float64).reshape(len(u), -1)
