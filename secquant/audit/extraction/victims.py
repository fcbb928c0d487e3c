"""Reference victims for the extraction audit: trained, quantized, with the attacker's pool and held-out data.

* :attr:`VictimKind.LOGISTIC`: one ``Linear`` layer (logistic regression),
  e.g. on breast cancer (30 features, 2 classes);
* :attr:`VictimKind.MLP`: ``Linear -> Square -> Linear`` (:func:`secquant.models.digits_mlp`
  shape), e.g. on digits (64 features, 10 classes).

The training split is the attacker's pool of unlabeled inputs (shuffled with
the seed); the test split is held out for fidelity and accuracy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secquant.errors import ConfigError
from secquant.quant.primitives import coerce_enum

__all__ = ["Victim", "VictimKind", "train_victim", "victim_from_model"]


class VictimKind(enum.Enum):
    """Which reference victim to train."""

    LOGISTIC = "logistic"
    MLP = "mlp"


@dataclass(frozen=True, eq=False)
class Victim:
    """A quantized model under attack, with the data the audit uses.

    Attributes:
        qm: The ``QuantizedModel``.
        pool: Unlabeled inputs the attacker may query, ``(n, *input_shape)``.
        x_heldout, y_heldout: Held-out inputs and labels for fidelity and accuracy.
        description: One line for reports.
    """

    qm: Any
    pool: NDArray[np.float32]
    x_heldout: NDArray[np.float32]
    y_heldout: NDArray[np.int64]
    description: str


def _split(dataset: str, seed: int) -> tuple[Any, NDArray[np.float32]]:
    from secquant.data import load_dataset

    d = load_dataset(dataset, seed=seed)
    pool = d.x_train[np.random.default_rng([seed, 7]).permutation(len(d.x_train))]
    return d, pool


def train_victim(kind: VictimKind | str, dataset: str, *, hidden: int = 32, epochs: int = 30,
                 bits: int = 8, seed: int = 0) -> Victim:
    """Train and quantize a reference victim on ``dataset`` (``secquant.data`` name).

    Args:
        kind: :class:`VictimKind` or its value.
        dataset: ``breast_cancer``, ``digits`` or ``mnist``.
        hidden: Hidden width of the MLP, >= 1.
        epochs: Training epochs, >= 1.
        bits: Bit-width of ``quantize_model``.
        seed: Seeds the split, the initial weights and the batch order.

    Raises:
        ConfigError: unknown kind or data set, or a size out of range.
    """
    import torch
    from torch import nn

    import secquant
    from secquant.nn import Square
    from secquant.training import TrainOptions, train_classifier

    kind = coerce_enum(kind, VictimKind, "victim")
    if hidden < 1 or epochs < 1:
        raise ConfigError(f"hidden and epochs must be >= 1, got {hidden} and {epochs}")
    d, pool = _split(dataset, seed)
    features = d.n_features
    torch.manual_seed(seed)
    model = (nn.Sequential(nn.Linear(features, d.n_classes)) if kind is VictimKind.LOGISTIC
             else nn.Sequential(nn.Linear(features, hidden), Square(), nn.Linear(hidden, d.n_classes)))
    train_classifier(model, d.x_train, d.y_train, TrainOptions(epochs=epochs, lr=3e-3, seed=seed))
    qm = secquant.quantize_model(model, d.x_train, bits=bits)
    shape = "linear" if kind is VictimKind.LOGISTIC else f"{features}-{hidden}-square-{d.n_classes}"
    return Victim(qm=qm, pool=pool, x_heldout=d.x_test, y_heldout=d.y_test,
                  description=f"{kind.value} ({shape}) on {d.name.value}, {bits}-bit")


def victim_from_model(qm: Any, dataset: str, *, seed: int = 0, description: str = "") -> Victim:
    """Wrap a given ``QuantizedModel`` with ``dataset``'s pool and held-out split.

    Raises:
        ConfigError: the model's input size does not match the data set.
    """
    d, pool = _split(dataset, seed)
    if int(np.prod(qm.input_shape)) != d.n_features:
        raise ConfigError(f"the model takes {int(np.prod(qm.input_shape))} features; {dataset} has {d.n_features}")
    return Victim(qm=qm, pool=pool.reshape(len(pool), *qm.input_shape),
                  x_heldout=d.x_test.reshape(len(d.x_test), *qm.input_shape), y_heldout=d.y_test,
                  description=description or f"saved model on {d.name.value}")
