"""The whole tuning recipe on a bundled data set, shared by ``secquant tune``, the example and the benchmark.

float ReLU MLP → :func:`~secquant.nn.approximate_activations` + float
fine-tuning → uniform 8-bit PTQ (the reference modulus) → :func:`~secquant.tune`
→ QAT at ``qat_bits`` → :func:`~secquant.tuning.accuracy_breakdown`.

The search scores on a validation split held out of the training data; every
reported test accuracy is on the untouched test split.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from secquant.data import Dataset, load_dataset
from secquant.errors import ConfigError
from secquant.nn.approx import ActivationFit, approximate_activations
from secquant.quant.calibration import check_bits
from secquant.quant.config import QuantConfig
from secquant.quant.convert import quantize_model
from secquant.quant.model import QuantizedModel
from secquant.quant.requantize_config import RequantizeConfig
from secquant.tuning.qat import FakeQuantModel
from secquant.tuning.report import AccuracyReport, accuracy_breakdown
from secquant.tuning.search import MaxAccuracyDrop, SearchSpace, TuneResult, tune
from secquant.tuning.train import TrainConfig, accuracy, mlp, predictions, train

__all__ = ["PipelineConfig", "PipelineResult", "Prepared", "prepare", "qat", "run_pipeline"]


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and choices of the recipe.

    Attributes:
        dataset: ``mnist``, ``digits`` or ``breast_cancer``.
        hidden: Hidden widths of the MLP.
        train_limit, test_limit: Use only the first n examples (small runs); None: all.
        validation: Examples held out of the training split for the search, >= 1.
        calibration: Training examples that fix the quantization scales, >= 1.
        degree: Degree of the polynomial activations.
        float_epochs, finetune_epochs, qat_epochs: Epochs of each training stage.
        qat_bits: Uniform bits of QAT.
        target_drop: Accuracy drop (points) the search may lose against float.
        lr: Adam learning rate of float training (later stages use half).
        encrypted: Test examples to run under ``scheme`` in the report (0: skip).
        scheme: Scheme of the encrypted stage.
        seed: Seed of the data split, initialisation and shuffling.
        requantize: Requantization of every integer model of the recipe (the 8-bit
            one, the search, QAT); None keeps them exact.
    """

    dataset: str = "mnist"
    hidden: tuple[int, ...] = (128,)
    train_limit: int | None = None
    test_limit: int | None = None
    validation: int = 500
    calibration: int = 1000
    degree: int = 2
    float_epochs: int = 20
    finetune_epochs: int = 5
    qat_epochs: int = 10
    qat_bits: int = 4
    target_drop: float = 1.0
    lr: float = 1e-3
    encrypted: int = 0
    scheme: str = "bfv"
    seed: int = 0
    requantize: RequantizeConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.requantize is not None and not isinstance(self.requantize, RequantizeConfig):
            raise ConfigError(f"requantize must be a RequantizeConfig or None, got {self.requantize!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"hidden must hold at least one positive width, got {self.hidden}")
        for name in ("train_limit", "test_limit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
                raise ConfigError(f"{name} must be an int >= 2 or None, got {v!r}")
        for name in ("validation", "calibration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("float_epochs", "finetune_epochs", "qat_epochs", "encrypted"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name} must be an int >= 0, got {v!r}")
        check_bits(self.qat_bits, "qat_bits")
        MaxAccuracyDrop(self.target_drop)
        TrainConfig(lr=self.lr)


@contextmanager
def progress_bar(enabled: bool, total: int | None, desc: str) -> Iterator[Any]:
    """A tqdm bar when ``enabled`` and tqdm is installed, else an object whose methods do nothing."""
    bar: Any = None
    if enabled:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=desc, leave=True)
        except ImportError:  # tqdm is the optional 'progress' extra
            bar = None
    try:
        yield bar if bar is not None else _NoBar()
    finally:
        if bar is not None:
            bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Do nothing."""

    def set_postfix_str(self, s: str) -> None:
        """Do nothing."""


@dataclass(frozen=True, eq=False)
class Prepared:
    """Data and the two float models every later stage starts from."""

    config: PipelineConfig
    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_val: NDArray[np.float32]
    y_val: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    calibration: NDArray[np.float32]
    input_range: tuple[float, float] | None
    float_model: nn.Module
    poly_model: nn.Module
    fits: tuple[ActivationFit, ...]


def _split(ds: Dataset, cfg: PipelineConfig) -> tuple[NDArray[Any], ...]:
    x_tr, y_tr = ds.x_train[: cfg.train_limit], ds.y_train[: cfg.train_limit]
    x_te, y_te = ds.x_test[: cfg.test_limit], ds.y_test[: cfg.test_limit]
    if cfg.validation >= len(y_tr):
        raise ConfigError(f"validation ({cfg.validation}) must be smaller than the training split ({len(y_tr)})")
    n = len(y_tr) - cfg.validation
    return x_tr[:n], y_tr[:n], x_tr[n:], y_tr[n:], x_te, y_te


def _train(model: nn.Module, params: list[nn.Parameter], x: Any, y: Any, epochs: int, lr: float, seed: int,
           progress: bool, desc: str, forward: Any = None, modules: tuple[nn.Module, ...] | None = None) -> None:
    if epochs == 0:
        return
    with progress_bar(progress, epochs, desc) as bar:
        train(forward or model, params, x, y, TrainConfig(epochs=epochs, lr=lr, seed=seed),
              on_epoch=lambda e, loss: (bar.update(1), bar.set_postfix_str(f"loss {loss:.4f}")),
              modules=modules or (model,))


def prepare(cfg: PipelineConfig, *, progress: bool = False) -> Prepared:
    """Load the data, train the float ReLU model, approximate its activations and fine-tune.

    Raises:
        ConfigError: invalid sizes.
    """
    torch.manual_seed(cfg.seed)
    ds = load_dataset(cfg.dataset, seed=cfg.seed)
    x_tr, y_tr, x_val, y_val, x_te, y_te = _split(ds, cfg)
    model = mlp(ds.n_features, cfg.hidden, ds.n_classes, seed=cfg.seed)
    _train(model, list(model.parameters()), x_tr, y_tr, cfg.float_epochs, cfg.lr, cfg.seed, progress, "float epochs")
    calib = x_tr[: cfg.calibration]
    fits: list[ActivationFit] = []
    poly = approximate_activations(model, cfg.degree, calibration=calib, fits=fits)
    _train(poly, list(poly.parameters()), x_tr, y_tr, cfg.finetune_epochs, cfg.lr / 2, cfg.seed + 1, progress,
           "poly fine-tune epochs")
    input_range = (0.0, 1.0) if ds.image_shape is not None else None
    return Prepared(cfg, x_tr, y_tr, x_val, y_val, x_te, y_te, calib, input_range, model, poly, tuple(fits))


def qat(prep: Prepared, bits: int, epochs: int, *, progress: bool = False,
        config: QuantConfig | None = None) -> tuple[FakeQuantModel, QuantizedModel]:
    """QAT of a copy of the polynomial model at ``bits`` (or ``config``); returns it and its integer model.

    Raises:
        ConfigError: the integers outgrow what torch holds exactly (see :class:`FakeQuantModel`).
    """
    model = copy.deepcopy(prep.poly_model)
    cfg = config if config is not None else QuantConfig(bits=bits, input_range=prep.input_range,
                                                        requantize=prep.config.requantize)
    fq = FakeQuantModel(model, prep.calibration, cfg)
    _train(model, list(model.parameters()), prep.x_train, prep.y_train, epochs, prep.config.lr / 2,
           prep.config.seed + 2, progress, f"QAT {cfg.bits}-bit epochs", forward=fq, modules=(model,))
    return fq, fq.convert()


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """Everything the recipe measured (accuracies are fractions of the test split)."""

    prepared: Prepared
    float_accuracy: float
    poly_accuracy: float
    ptq8_accuracy: float
    ptq8_modulus: int
    search: TuneResult
    search_test_accuracy: float
    qat_fake: FakeQuantModel
    qat_model: QuantizedModel
    qat_accuracy: float
    qat_int_accuracy: float
    qat_identical: bool
    report: AccuracyReport
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (moduli as decimal strings)."""
        return {
            "config": asdict(self.prepared.config),
            "float_relu_test_accuracy": self.float_accuracy,
            "poly_test_accuracy": self.poly_accuracy,
            "ptq8": {"test_accuracy": self.ptq8_accuracy, "modulus": str(self.ptq8_modulus),
                     "modulus_bits": (self.ptq8_modulus - 1).bit_length()},
            "search": {**self.search.to_dict(), "test_accuracy": self.search_test_accuracy,
                       "modulus_ratio_to_ptq8": self.search.best.modulus / self.ptq8_modulus},
            "qat": {"bits": self.prepared.config.qat_bits, "test_accuracy": self.qat_accuracy,
                    "integer_test_accuracy": self.qat_int_accuracy, "identical_predictions": self.qat_identical,
                    "modulus": str(self.qat_model.modulus_needed),
                    "modulus_bits": (self.qat_model.modulus_needed - 1).bit_length()},
            "activations": [asdict(f) for f in self.prepared.fits],
            "report": self.report.to_dict(),
        }

    def summary(self) -> str:
        """Human-readable lines: accuracies, both moduli, and the per-stage table."""
        b = self.search.best
        lines = [
            f"float ReLU {100 * self.float_accuracy:.2f}%   polynomial (before QAT) {100 * self.poly_accuracy:.2f}%",
            f"uniform 8-bit PTQ {100 * self.ptq8_accuracy:.2f}%, modulus {self.ptq8_modulus.bit_length()} bits",
            f"search: {b.describe()}: test {100 * self.search_test_accuracy:.2f}%, modulus {b.modulus_bits} bits "
            f"(ratio to 8-bit: 2^{np.log2(b.modulus / self.ptq8_modulus):.1f})",
            f"QAT {self.prepared.config.qat_bits}-bit: {100 * self.qat_accuracy:.2f}% (integer model "
            f"{100 * self.qat_int_accuracy:.2f}%, identical per image: {self.qat_identical}), modulus "
            f"{self.qat_model.modulus_needed.bit_length()} bits",
            "", self.report.table(),
        ]
        return "\n".join(lines)


def run_pipeline(cfg: PipelineConfig, *, progress: bool = False) -> PipelineResult:
    """Run the whole recipe.

    Raises:
        ConfigError: invalid sizes or a QAT setting torch cannot reproduce exactly.
        TargetNotMetError: the search found nothing within ``target_drop``.
    """
    prep = prepare(cfg, progress=progress)
    xt, yt = prep.x_test, prep.y_test
    f_acc, p_acc = accuracy(prep.float_model, xt, yt), accuracy(prep.poly_model, xt, yt)
    q8 = quantize_model(prep.poly_model, prep.calibration,
                        config=QuantConfig(bits=8, input_range=prep.input_range, requantize=cfg.requantize))
    space = SearchSpace(input_ranges=(prep.input_range,), requantize=(cfg.requantize,))
    with progress_bar(progress, len(space.uniform_configs()), "search trials") as bar:
        def on_trial(t: Any) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{t.describe()} -> {100 * t.accuracy:.1f}% / {t.modulus_bits} bits")

        found = tune(prep.poly_model, prep.calibration, (prep.x_val, prep.y_val),
                     MaxAccuracyDrop(cfg.target_drop), space=space, on_trial=on_trial)
    fq, qm = qat(prep, cfg.qat_bits, cfg.qat_epochs, progress=progress)
    fq_pred, qm_pred = predictions(fq, xt), predictions(qm.predict, xt)
    report = accuracy_breakdown(qm, xt, yt, float_model=prep.float_model, poly_model=fq.model,
                                encrypted=min(cfg.encrypted, len(yt)), scheme=cfg.scheme)
    return PipelineResult(
        prep, f_acc, p_acc, accuracy(q8.predict, xt, yt), int(q8.modulus_needed), found,
        accuracy(found.model.predict, xt, yt), fq, qm, float(np.mean(fq_pred == yt)), float(np.mean(qm_pred == yt)),
        bool(np.array_equal(fq_pred, qm_pred)), report,
    )
