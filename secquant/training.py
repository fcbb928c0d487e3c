"""The one training loop and the one ``accuracy`` of secquant.

Every classifier secquant trains goes through :func:`train_classifier`: the
reference networks (:mod:`secquant.models`), quantization-aware training
(:mod:`secquant.tuning`) and the shadow models of the membership audit
(:mod:`secquant.audit.membership`), with or without DP-SGD.

.. code-block:: python

    from secquant.training import TrainOptions, accuracy, train_classifier

    torch.manual_seed(0)                        # fixes the initial weights
    model = secquant.models.digits_mlp()
    train_classifier(model, x_train, y_train, TrainOptions(epochs=20, lr=3e-3, seed=0))
    accuracy(model, x_test, y_test)             # fraction in [0, 1]

The loop minimises the cross-entropy of ``forward(x)`` against integer labels on
mini-batches: a permutation drawn from a generator seeded with ``seed`` each
epoch (or, under DP-SGD, Poisson batches from opacus, drawn from the same
seeded generator).  The same initial weights, data and options give the same
weights on one machine.  The loop itself never touches torch's global
generator: seed it before building the model (and before DP-SGD, whose
noise opacus draws from it) for full reproducibility.

torch and opacus are imported inside the functions, so importing this module
is cheap.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "DPSGD",
    "Accountant",
    "Optimizer",
    "TrainOptions",
    "TrainResult",
    "TrainingDivergedError",
    "accuracy",
    "predictions",
    "train_classifier",
]


class TrainingDivergedError(ConfigError):
    """The training loss became NaN or infinite (lower the learning rate)."""


class Optimizer(enum.Enum):
    """The optimizer of :func:`train_classifier`."""

    ADAM = "adam"  #: ``torch.optim.Adam``
    SGD = "sgd"  #: ``torch.optim.SGD`` without momentum (the DP-SGD of Abadi et al.)


class Accountant(enum.Enum):
    """The opacus privacy accountant that calibrates DP-SGD noise."""

    RDP = "rdp"  #: Rényi DP (Mironov 2017)
    PRV = "prv"  #: privacy random variables (Gopi et al. 2021)


def check_int(value: object, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``.

    Raises:
        ConfigError: a bool, a non-integer or a value below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_number(value: object, what: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``).

    Raises:
        ConfigError: a bool, a non-number, a non-finite or an out-of-range value.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) < 0 or (float(value) == 0 and not allow_zero):  # type: ignore[arg-type]
        raise ConfigError(f"{what} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DPSGD:
    """DP-SGD through opacus: Poisson batches, per-example clipping, Gaussian noise.

    The noise multiplier is calibrated by the accountant so that the whole run
    (``TrainOptions.epochs`` epochs at expected batch size
    ``TrainOptions.batch_size``) is (ε, δ)-DP for one training row.

    Attributes:
        epsilon: Target ε in nats, > 0.
        delta: Target δ in (0, 1).
        max_grad_norm: Per-example L2 clipping norm, > 0.
        accountant: :class:`Accountant` (or ``"rdp"``/``"prv"``).

    Raises:
        ConfigError: a field out of range.
    """

    epsilon: float = 2.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: Accountant | str = Accountant.RDP

    def __post_init__(self) -> None:
        check_number(self.epsilon, "epsilon")
        if not isinstance(self.delta, (int, float)) or not 0.0 < float(self.delta) < 1.0:
            raise ConfigError(f"delta must lie in (0, 1), got {self.delta!r}")
        check_number(self.max_grad_norm, "max_grad_norm")
        object.__setattr__(self, "accountant", coerce_enum(self.accountant, Accountant, "accountant"))


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train_classifier` trains.

    Attributes:
        epochs: Passes over the training data, >= 0 (0 leaves the weights as they are; >= 1 with ``dp``).
        lr: Learning rate, > 0.
        batch_size: Examples per step (expected size under DP-SGD), >= 1.
        seed: Seeds the batch order (and the Poisson sampling of DP-SGD), >= 0.
        optimizer: :class:`Optimizer` (or ``"adam"``/``"sgd"``).
        weight_decay: L2 penalty of the optimizer, >= 0.
        clip_grad: Largest L2 norm of the whole gradient per step, > 0, or None
            for no clipping (must be None with ``dp``, which clips per example).
        dp: DP-SGD settings, or None for non-private training.

    Raises:
        ConfigError: a field out of range or an inconsistent combination.
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    optimizer: Optimizer | str = Optimizer.ADAM
    weight_decay: float = 0.0
    clip_grad: float | None = None
    dp: DPSGD | None = None

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", 1 if self.dp is not None else 0)
        check_number(self.lr, "lr")
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.seed, "seed", 0)
        object.__setattr__(self, "optimizer", coerce_enum(self.optimizer, Optimizer, "optimizer"))
        check_number(self.weight_decay, "weight_decay", allow_zero=True)
        if self.clip_grad is not None:
            check_number(self.clip_grad, "clip_grad")
        if self.dp is not None and not isinstance(self.dp, DPSGD):
            raise ConfigError(f"dp must be a DPSGD(...) or None, got {self.dp!r}")
        if self.dp is not None and self.clip_grad is not None:
            raise ConfigError("clip_grad must be None with dp: DP-SGD clips each example to dp.max_grad_norm")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What :func:`train_classifier` returns.

    Attributes:
        model: The trained module (the one passed in, in eval mode).
        losses: Mean cross-entropy per epoch (nats), in order.
        epsilon: The accountant's ε at ``dp.delta`` under DP-SGD, else None.
    """

    model: nn.Module
    losses: tuple[float, ...]
    epsilon: float | None = None


Batches = Callable[[], Iterable[tuple["torch.Tensor", "torch.Tensor"]]]


def _tensors(x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if xt.ndim == 0 or xt.shape[0] == 0 or yt.ndim != 1 or xt.shape[0] != yt.shape[0]:
        raise ConfigError(f"need as many labels as inputs (>0), got {tuple(xt.shape)} inputs and "
                          f"{tuple(yt.shape)} labels")
    return xt, yt


def _make_optimizer(parameters: list[nn.Parameter], options: TrainOptions) -> torch.optim.Optimizer:
    import torch

    if options.optimizer is Optimizer.SGD:
        return torch.optim.SGD(parameters, lr=options.lr, weight_decay=options.weight_decay)
    return torch.optim.Adam(parameters, lr=options.lr, weight_decay=options.weight_decay)


def _shuffled(xt: torch.Tensor, yt: torch.Tensor, options: TrainOptions) -> Batches:
    import torch

    gen = torch.Generator().manual_seed(options.seed)

    def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(xt.shape[0], generator=gen)
        for start in range(0, xt.shape[0], options.batch_size):
            idx = perm[start:start + options.batch_size]
            yield xt[idx], yt[idx]

    return epoch


def _run_epochs(forward: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
                parameters: list[nn.Parameter], batches: Batches, options: TrainOptions,
                on_epoch: Callable[[int, float], None] | None) -> tuple[float, ...]:
    """The loop: per batch, cross-entropy, backward, optional clipping, one optimizer step."""
    import torch
    from torch import nn

    losses = []
    for epoch in range(options.epochs):
        total, seen = 0.0, 0
        for xb, yb in batches():
            if len(yb) == 0:  # Poisson sampling can draw an empty batch
                continue
            loss = nn.functional.cross_entropy(forward(xb).float(), yb)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower lr")
            optimizer.zero_grad()
            loss.backward()
            if options.clip_grad is not None:
                nn.utils.clip_grad_norm_(parameters, options.clip_grad)
            optimizer.step()
            total += loss.item() * len(yb)
            seen += len(yb)
        losses.append(total / max(seen, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return tuple(losses)


def _train_private(model: nn.Module, xt: torch.Tensor, yt: torch.Tensor, options: TrainOptions, dp: DPSGD,
                   on_epoch: Callable[[int, float], None] | None) -> tuple[tuple[float, ...], float]:
    """DP-SGD: opacus wraps model, optimizer and data; the same loop runs; hooks are removed after."""
    import warnings

    import torch
    from opacus import PrivacyEngine

    data = torch.utils.data.TensorDataset(xt, yt)
    loader = torch.utils.data.DataLoader(data, batch_size=options.batch_size,
                                         generator=torch.Generator().manual_seed(options.seed))
    params = [p for p in model.parameters() if p.requires_grad]
    with warnings.catch_warnings():
        # Audit models are measured, not deployed: the fast (non-cryptographic) RNG is fine here.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        engine = PrivacyEngine(accountant=Accountant(dp.accountant).value, secure_mode=False)
        private, opt, loader = engine.make_private_with_epsilon(
            module=model, optimizer=_make_optimizer(params, options), data_loader=loader,
            target_epsilon=dp.epsilon, target_delta=dp.delta, epochs=options.epochs, max_grad_norm=dp.max_grad_norm,
        )
        private.train()
        try:
            losses = _run_epochs(private, opt, params, lambda: loader, options, on_epoch)
        finally:
            private._close()  # remove opacus' hooks and per-example gradients from ``model``
        return losses, float(engine.get_epsilon(dp.delta))


def train_classifier(model: nn.Module, x: ArrayLike, y: ArrayLike, options: TrainOptions | None = None, *,
                     forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     parameters: Iterable[nn.Parameter] | None = None,
                     on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``model`` in place to classify ``x`` as ``y`` (cross-entropy on mini-batches).

    Args:
        model: The module trained; in train mode during training, eval mode after.
        x: Inputs, shape ``(n, *input_shape)`` (cast to float32; not reshaped).
        y: Integer labels in ``[0, classes)``, shape ``(n,)``.
        options: Epochs, learning rate, batch size, seed, optimizer, clipping, DP-SGD;
            ``TrainOptions()`` when None.
        forward: Maps a float32 batch to scores ``(batch, classes)``; default ``model``
            (QAT passes the fake-quantized forward that wraps ``model``).  Not with DP-SGD.
        parameters: What the optimizer updates; default ``model.parameters()``.
        on_epoch: Called with (epoch index from 0, mean loss) after each epoch (progress bars).

    Returns:
        A :class:`TrainResult`: the model, the loss per epoch, the accountant's ε under DP-SGD.

    Raises:
        ConfigError: mismatched or empty data, or ``forward``/``parameters`` given with DP-SGD.
        TrainingDivergedError: the loss became NaN or infinite.
    """
    options = options or TrainOptions()
    xt, yt = _tensors(x, y)
    if options.dp is not None and (forward is not None or parameters is not None):
        raise ConfigError("DP-SGD trains the module itself: pass neither forward nor parameters with dp")
    model.train()
    try:
        if options.dp is not None:
            losses, eps = _train_private(model, xt, yt, options, options.dp, on_epoch)
            return TrainResult(model, losses, eps)
        params = list(model.parameters() if parameters is None else parameters)
        losses = _run_epochs(forward or model, _make_optimizer(params, options), params,
                             _shuffled(xt, yt, options), options, on_epoch)
        return TrainResult(model, losses)
    finally:
        model.eval()


def predictions(model_or_fn: Callable[[Any], Any], x: ArrayLike, batch: int = 1000) -> NDArray[np.int64]:
    """Argmax class of ``model_or_fn`` over ``x``, in batches, without gradients.

    Args:
        model_or_fn: A torch module or any callable returning scores ``(batch, classes)``
            as a torch tensor or an array (``qm.predict``, ``qm.dequantize_output``).
        x: Inputs ``(n, ...)``.  Float inputs reach ``model_or_fn`` as float32 torch
            tensors; integer inputs (e.g. decrypted integer outputs for
            ``qm.dequantize_output``) as numpy batches, unchanged.
        batch: Rows per call, >= 1.

    Returns:
        int64 class indices, shape ``(n,)``.
    """
    import torch

    arr = np.asarray(x)
    integral = arr.dtype.kind in "iuO"
    if not integral:
        arr = arr.astype(np.float32, copy=False)
    out = []
    with torch.no_grad():
        for i in range(0, arr.shape[0], check_int(batch, "batch", 1)):
            chunk = arr[i:i + batch]
            scores = model_or_fn(chunk if integral else torch.from_numpy(chunk))
            scores = scores.detach().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
            out.append(np.argmax(scores, axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def accuracy(model_or_fn: Callable[[Any], Any], x: ArrayLike, y: ArrayLike) -> float:
    """Fraction of ``x`` whose argmax of ``model_or_fn`` equals ``y``, in [0, 1].

    ``model_or_fn`` and ``x`` as in :func:`predictions`: ``accuracy(model, x, y)``,
    ``accuracy(qm.predict, x, y)``, ``accuracy(qm.dequantize_output, decrypted, y)``.

    Raises:
        ConfigError: ``y`` does not hold one label per input.
    """
    labels = np.asarray(y)
    pred = predictions(model_or_fn, x)
    if labels.shape != pred.shape:
        raise ConfigError(f"need one label per input: {pred.shape[0]} inputs, labels of shape {labels.shape}")
    return float(np.mean(pred == labels))
