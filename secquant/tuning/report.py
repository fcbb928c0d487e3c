"""Where accuracy is lost: float → polynomial activations → quantized → modular → encrypted.

:func:`accuracy_breakdown` scores the same test data at every stage of the
pipeline, so a drop can be pinned on the activation approximation, on
quantization, on the modulus (wrap-around when ``p`` is smaller than the
bounds need) or on the encryption backend (which should change nothing for
an exact scheme).  Stages that cannot be run are listed as ``not run`` with
the reason, never silently dropped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from torch import nn

from secquant.errors import ConfigError, SecquantError
from secquant.quant.model import QuantizedModel
from secquant.quant.primitives import centered_lift
from secquant.training import predictions

__all__ = ["AccuracyReport", "Stage", "StageAccuracy", "StageStatus", "accuracy_breakdown"]


class Stage(enum.Enum):
    """Pipeline stages, in order."""

    FLOAT = "float"  #: the original float model
    POLYNOMIAL = "polynomial"  #: float, activations replaced by polynomials
    QUANTIZED = "quantized"  #: ``qm.predict``: exact integers
    MODULAR = "modular"  #: ``forward_int`` reduced mod p and lifted to (-p/2, p/2]
    ENCRYPTED = "encrypted"  #: ``secquant.compile(qm, scheme).predict`` on a subset


class StageStatus(enum.Enum):
    """Whether a stage was measured."""

    RUN = "run"
    NOT_RUN = "not run"
    FAILED = "failed"


@dataclass(frozen=True)
class StageAccuracy:
    """Accuracy at one stage.

    Attributes:
        stage: Which stage.
        status: Run, not run, or failed.
        accuracy: Fraction correct in [0, 1]; NaN unless run.
        n: Examples scored.
        agreement: Fraction of those whose prediction equals the previous run
            stage's on the same examples; NaN if not comparable.
        note: Reason, modulus, or scheme details.
    """

    stage: Stage
    status: StageStatus
    accuracy: float = math.nan
    n: int = 0
    agreement: float = math.nan
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready row (NaN becomes None)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {"stage": self.stage.value, "status": self.status.value, "accuracy": num(self.accuracy),
                "n": self.n, "agreement": num(self.agreement), "note": self.note}


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy at every stage, in pipeline order.

    Attributes:
        stages: One row per :class:`Stage`.
        modulus: The modulus of the modular stage.
        modulus_needed: What the integer model needs (``qm.modulus_needed``).
    """

    stages: tuple[StageAccuracy, ...]
    modulus: int
    modulus_needed: int

    def __getitem__(self, stage: Stage | str) -> StageAccuracy:
        key = stage.value if isinstance(stage, Stage) else str(stage)
        for row in self.stages:
            if row.stage.value == key:
                return row
        raise KeyError(key)

    def table(self) -> str:
        """Fixed-width text: stage, accuracy, change from the previous run stage (same examples only), agreement, note."""
        rows = [("stage", "accuracy", "change", "n", "agree", "note")]
        previous: StageAccuracy | None = None
        for r in self.stages:
            if r.status is StageStatus.RUN:
                same = previous is not None and previous.n == r.n
                change = f"{100 * (r.accuracy - previous.accuracy):+.2f}" if same and previous else ""
                rows.append((r.stage.value, f"{100 * r.accuracy:.2f}", change, str(r.n),
                             "" if math.isnan(r.agreement) else f"{100 * r.agreement:.1f}%", r.note))
                previous = r
            else:
                rows.append((r.stage.value, r.status.value, "", "", "", r.note))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {"stages": [r.to_dict() for r in self.stages], "modulus": str(self.modulus),
                "modulus_needed": str(self.modulus_needed)}


def _measure(stage: Stage, fn: Callable[[Any], Any], x: NDArray[np.float32], y: NDArray[np.int64],
             note: str = "") -> tuple[StageAccuracy, NDArray[np.int64]]:
    pred = predictions(fn, x)
    return StageAccuracy(stage, StageStatus.RUN, float(np.mean(pred == y)), len(y), note=note), pred


def _with_agreement(row: StageAccuracy, pred: NDArray[np.int64], ref: NDArray[np.int64] | None) -> StageAccuracy:
    if ref is None:
        return row
    n = len(pred)
    return StageAccuracy(row.stage, row.status, row.accuracy, row.n, float(np.mean(pred == ref[:n])), row.note)


def _check_modulus(modulus: int | None, qm: QuantizedModel) -> int:
    if modulus is None:
        return int(qm.modulus)
    if isinstance(modulus, bool) or not isinstance(modulus, (int, np.integer)) or modulus < 2:
        raise ConfigError(f"modulus must be an int >= 2, got {modulus!r}")
    return int(modulus)


def accuracy_breakdown(
    qm: QuantizedModel,
    x: ArrayLike,
    y: ArrayLike,
    *,
    float_model: nn.Module | None = None,
    poly_model: nn.Module | None = None,
    modulus: int | None = None,
    encrypted: int = 0,
    scheme: str = "bfv",
    backend_options: dict[str, Any] | None = None,
) -> AccuracyReport:
    """Score ``x`` at every stage of the pipeline.

    Args:
        qm: The integer model.
        x, y: Test inputs of shape (n, *input_shape) and int labels.
        float_model: The original float model (ReLU...); stage ``not run`` if None.
        poly_model: The float model with polynomial activations; ``not run`` if None.
        modulus: Plaintext modulus of the modular stage; ``qm.modulus`` if None.
            A smaller one than ``qm.modulus_needed`` shows the wrap-around loss.
        encrypted: Examples (the first ones) to run encrypted; 0 skips the stage.
        scheme: Scheme for the encrypted stage (``"bfv"``; ``"plain"`` for a dry run).
        backend_options: Passed to ``secquant.compile``.

    Returns:
        The per-stage accuracies.  The encrypted stage is ``not run`` when
        ``encrypted`` is 0 or the scheme's backend is not installed, and
        ``failed`` (with the reason) when the backend refuses the model.

    Raises:
        ConfigError: mismatched data, bad modulus or subset size.
    """
    if not isinstance(qm, QuantizedModel):
        raise ConfigError(f"qm must be a QuantizedModel, got {type(qm).__name__}")
    xs = np.asarray(x.detach().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    ys = np.asarray(y.detach().numpy() if hasattr(y, "detach") else y).astype(np.int64)
    if xs.shape[0] == 0 or xs.shape[0] != ys.shape[0]:
        raise ConfigError(f"need as many labels as inputs (>0), got {xs.shape[0]} and {ys.shape[0]}")
    if isinstance(encrypted, bool) or not isinstance(encrypted, int) or encrypted < 0:
        raise ConfigError(f"encrypted must be a number of examples >= 0, got {encrypted!r}")
    p = _check_modulus(modulus, qm)
    rows: list[StageAccuracy] = []
    ref: NDArray[np.int64] | None = None
    for stage, model in ((Stage.FLOAT, float_model), (Stage.POLYNOMIAL, poly_model)):
        if model is None:
            rows.append(StageAccuracy(stage, StageStatus.NOT_RUN, note="no model given"))
            continue
        was_training = model.training
        model.eval()
        try:
            row, pred = _measure(stage, lambda t, m=model: m(t.to(next(m.parameters()).dtype)), xs, ys)
        finally:
            model.train(was_training)
        rows.append(_with_agreement(row, pred, ref))
        ref = pred
    row, q_pred = _measure(Stage.QUANTIZED, qm.predict, xs, ys, note=f"{qm.config.get('bits', '?')}-bit weights")
    rows.append(_with_agreement(row, q_pred, ref))
    wraps = p < qm.modulus_needed
    note = f"p has {(p - 1).bit_length()} bits" + (f"; needs {qm.modulus_needed.bit_length()}: wraps" if wraps else "")
    row, m_pred = _measure(Stage.MODULAR, lambda t: _modular_scores(qm, t, p), xs, ys, note=note)
    rows.append(_with_agreement(row, m_pred, q_pred))
    rows.append(_encrypted_stage(qm, xs[:encrypted], ys[:encrypted], m_pred, scheme, backend_options or {}))
    return AccuracyReport(tuple(rows), p, int(qm.modulus_needed))


def _modular_scores(qm: QuantizedModel, x: Any, p: int) -> NDArray[np.float64]:
    y_int = qm.forward_int(qm.quantize_input(x))
    return qm.dequantize_output(np.asarray(centered_lift(y_int, p), dtype=np.float64))


def _encrypted_stage(qm: QuantizedModel, x: NDArray[np.float32], y: NDArray[np.int64], ref: NDArray[np.int64],
                     scheme: str, options: dict[str, Any]) -> StageAccuracy:
    if len(y) == 0:
        return StageAccuracy(Stage.ENCRYPTED, StageStatus.NOT_RUN, note="encrypted=0: no examples requested")
    try:
        from secquant.backends.compile import compile as he_compile

        em = he_compile(qm, scheme, **options)
    except ImportError as exc:
        return StageAccuracy(Stage.ENCRYPTED, StageStatus.NOT_RUN, note=f"no {scheme} backend installed ({exc})")
    except SecquantError as exc:
        first = str(exc).splitlines()[0]
        status = StageStatus.NOT_RUN if "no backend" in first else StageStatus.FAILED
        return StageAccuracy(Stage.ENCRYPTED, status, note=f"{scheme}: {first}")
    try:
        ref_acc = 100 * float(np.mean(ref[: len(y)] == y))
        row, pred = _measure(Stage.ENCRYPTED, em.predict, x, y,
                             note=f"{scheme}, first {len(y)} examples (modular on them: {ref_acc:.2f})")
    except SecquantError as exc:
        return StageAccuracy(Stage.ENCRYPTED, StageStatus.FAILED, note=f"{scheme}: {str(exc).splitlines()[0]}")
    return _with_agreement(row, pred, ref)
