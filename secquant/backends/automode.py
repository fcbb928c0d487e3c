"""``mode="auto"`` (the default of BFV and CKKS): LATENCY or THROUGHPUT, chosen per call.

:class:`AutoMode` holds a model's compilations in both slot layouts, each
built when first needed, and :meth:`AutoMode.choose` picks, for a call of n
inputs, the one the cost model (:mod:`~secquant.backends.cost`) predicts to
be faster: a few inputs run in LATENCY mode (one ciphertext per input), a call
that fills the slots in THROUGHPUT mode (one ciphertext per feature of N
inputs).  A layout that has no secure parameters for the model
(``ParameterError``) is left out.  :class:`ModeChoice` records the choice and
why; ``EncryptedModel.parameters()["mode_choice"]`` shows the last one.

Each layout has its own keys (LATENCY needs Galois keys), made the first time
that layout runs.  A compiled model serves remote clients (``client_spec``,
``server``) in one layout: that of the last call, or before any call the
scheme's former default (BFV: THROUGHPUT, CKKS: LATENCY).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from secquant.backends.base import Backend, Mode, Scheme
from secquant.backends.cost import OpCounts, predict_seconds
from secquant.errors import ParameterError
from secquant.quant.model import QuantizedModel

__all__ = ["FALLBACK", "AutoMode", "ModeChoice", "op_counts"]

#: The layout a backend built directly with ``mode=AUTO`` takes (the schemes' former defaults).
FALLBACK: dict[Scheme, Mode] = {Scheme.BFV: Mode.THROUGHPUT, Scheme.CKKS: Mode.LATENCY}
#: The layouts AUTO chooses between.
MODES = (Mode.LATENCY, Mode.THROUGHPUT)


@dataclass(frozen=True)
class ModeChoice:
    """The layout chosen for one call.

    Attributes:
        mode: LATENCY or THROUGHPUT.
        inputs: Inputs of the call.
        seconds: Predicted seconds per layout (None: no parameters in that layout).
        reason: Why, in one sentence.
    """

    mode: Mode
    inputs: int
    seconds: dict[Mode, float | None]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"mode": self.mode.value, "inputs": self.inputs, "reason": self.reason,
                "predicted_seconds": {m.value: s for m, s in self.seconds.items()},
                "cost_model": "secquant.backends.cost: ceil(inputs / batch) batches x the SEAL operations of one "
                              "batch, each priced at N and the top level's primes"}


def op_counts(backend: Backend) -> OpCounts:
    """The operation counts of one batch of a BFV or CKKS backend's plan."""
    if backend.scheme is Scheme.BFV:
        from secquant.backends.bfv.cost import op_counts as bfv_counts

        b: Any = backend
        return bfv_counts(b.params, b.stages, int(np.prod(backend.qm.input_shape)))
    from secquant.backends.ckks.cost import op_counts as ckks_counts

    c: Any = backend
    return ckks_counts(c.plan)


class AutoMode:
    """Both layouts of one model and the per-call choice between them.

    Args:
        qm: The model.
        cls: Its backend class (BFV or CKKS).
        options: The backend's options with ``mode=AUTO``.

    Raises:
        ParameterError: neither layout has parameters for the model (the first layout's error).
    """

    def __init__(self, qm: QuantizedModel, cls: type[Backend], options: Any) -> None:
        self.qm, self.cls, self.options = qm, cls, options
        self._backends: dict[Mode, Backend] = {}
        self._missing: dict[Mode, str] = {}
        self.last: ModeChoice | None = None
        first = FALLBACK[cls.scheme]
        if self.backend(first) is None and self.backend(MODES[1 - MODES.index(first)]) is None:
            raise ParameterError(self._missing[first])
        self.initial = first if first in self._backends else next(iter(self._backends))

    def backend(self, mode: Mode) -> Backend | None:
        """The compilation in ``mode`` (built once), or None when that layout has no parameters."""
        if mode not in self._backends and mode not in self._missing:
            try:
                self._backends[mode] = self.cls(self.qm, dataclasses.replace(self.options, mode=mode))
            except ParameterError as exc:
                self._missing[mode] = str(exc)
        return self._backends.get(mode)

    def choose(self, inputs: int) -> ModeChoice:
        """The layout predicted fastest for a call of ``inputs`` inputs (ties: LATENCY); remembered in :attr:`last`."""
        seconds: dict[Mode, float | None] = {}
        for mode in MODES:
            b = self.backend(mode)
            seconds[mode] = predict_seconds(op_counts(b), inputs) if b is not None else None
        known = {m: s for m, s in seconds.items() if s is not None}
        mode = min(known, key=lambda m: (known[m], MODES.index(m)))
        parts = [f"{m.value} {s:.3g} s" if s is not None else f"{m.value}: no parameters" for m, s in seconds.items()]
        self.last = ModeChoice(mode, inputs, seconds,
                               f"{inputs} input(s): predicted {', '.join(parts)}; {mode.value} is "
                               + ("faster" if len(known) > 1 else "the only layout with parameters"))
        return self.last
