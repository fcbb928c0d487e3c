"""The one training loop (``secquant.training``): known answers on real data.

Oracles: accuracy on sklearn digits (a 64-32-10 Square MLP reaches 0.95+ in
a few epochs; >= 0.9 is asserted), bit-identical weights for identical seeds
and different weights for different seeds, the opacus accountant's ε against
its target, and a learning rate large enough to diverge that must be refused.
Deterministic: fixed seeds, no statistical false-failure rate.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import secquant
from secquant.data import Dataset, load_dataset
from secquant.errors import ConfigError
from secquant.training import (
    DPSGD,
    Optimizer,
    TrainingDivergedError,
    TrainOptions,
    accuracy,
    predictions,
    train_classifier,
)

FAST = TrainOptions(epochs=8, lr=3e-3, batch_size=64, seed=0)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), secquant.nn.Square(), torch.nn.Linear(32, 10))


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_reaches_90_percent_on_digits_in_seconds(digits: Dataset) -> None:
    model = _mlp(0)
    start = time.perf_counter()
    result = train_classifier(model, digits.x_train, digits.y_train, FAST)
    seconds = time.perf_counter() - start
    assert result.model is model and not model.training
    assert len(result.losses) == FAST.epochs and result.losses[-1] < result.losses[0] and result.epsilon is None
    assert accuracy(model, digits.x_test, digits.y_test) >= 0.9
    assert seconds < 20


def test_same_seed_same_weights_other_seed_other_weights(digits: Dataset) -> None:
    x, y = digits.x_train[:500], digits.y_train[:500]
    runs = []
    for seed in (0, 0, 1):
        model = _mlp(0)  # same initial weights; only the batch order's seed differs
        train_classifier(model, x, y, TrainOptions(epochs=2, seed=seed))
        runs.append(_weights(model))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_forward_parameters_and_sgd(digits: Dataset) -> None:
    """Only the given parameters move; the loss is that of the given forward."""
    model = _mlp(0)
    first, last = model[0], model[2]
    before = _weights(model)
    forward_calls = []

    def forward(xb: torch.Tensor) -> torch.Tensor:
        forward_calls.append(len(xb))
        return model(xb)

    train_classifier(model, digits.x_train[:256], digits.y_train[:256],
                     TrainOptions(epochs=1, batch_size=64, optimizer="sgd", lr=0.1),
                     forward=forward, parameters=last.parameters())
    assert forward_calls == [64, 64, 64, 64]
    assert torch.equal(first.weight, before[0]) and torch.equal(first.bias, before[1])
    assert not torch.equal(last.weight, before[2])
    assert TrainOptions(optimizer="sgd").optimizer is Optimizer.SGD


def test_zero_epochs_leave_the_weights(digits: Dataset) -> None:
    model = _mlp(0)
    before = _weights(model)
    assert train_classifier(model, digits.x_train, digits.y_train, TrainOptions(epochs=0)).losses == ()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_dp_sgd_meets_its_epsilon_and_leaves_a_plain_module(digits: Dataset) -> None:
    x, y = digits.x_train[:600], digits.y_train[:600]
    model = _mlp(0)
    opts = TrainOptions(epochs=3, lr=0.5, batch_size=64, optimizer="sgd", dp=DPSGD(epsilon=2.0, delta=1e-5))
    result = train_classifier(model, x, y, opts)
    assert result.epsilon is not None and 1.5 < result.epsilon <= 2.0 + 1e-6  # calibrated to the target
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    qm = secquant.quantize_model(model, x, bits=8)  # torch.fx traces it again: no opacus wrapper left
    assert accuracy(qm.predict, digits.x_test, digits.y_test) > 0.3  # DP noise costs accuracy, not all of it


def test_divergence_is_refused(digits: Dataset) -> None:
    model = _mlp(0)
    with pytest.raises(TrainingDivergedError, match="lower lr"):
        train_classifier(model, digits.x_train, digits.y_train, TrainOptions(epochs=3, lr=1e3, optimizer="sgd"))
    assert issubclass(TrainingDivergedError, ConfigError)


def test_accuracy_takes_modules_functions_and_integer_outputs(digits: Dataset) -> None:
    model = train_classifier(_mlp(0), digits.x_train, digits.y_train, FAST).model
    qm = secquant.quantize_model(model, digits.x_train, bits=8)
    x, y = digits.x_test, digits.y_test
    by_predict = accuracy(qm.predict, x, y)
    xq = qm.quantize_input(x)
    by_integers = accuracy(qm.dequantize_output, qm.forward_int(xq), y)  # integer outputs pass unchanged
    assert by_predict == by_integers
    expected = float(np.mean(model(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy() == y))
    assert accuracy(model, x, y) == expected
    assert predictions(model, x[:0]).shape == (0,)
    with pytest.raises(ConfigError, match="one label per input"):
        accuracy(model, x, y[:3])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainOptions(epochs=-1), "epochs"),
        (lambda: TrainOptions(lr=0), "lr"),
        (lambda: TrainOptions(batch_size=0), "batch_size"),
        (lambda: TrainOptions(optimizer="lbfgs"), "optimizer"),
        (lambda: TrainOptions(clip_grad=1.0, dp=DPSGD()), "clip_grad"),
        (lambda: TrainOptions(epochs=0, dp=DPSGD()), "epochs"),
        (lambda: DPSGD(delta=1.0), "delta"),
        (lambda: DPSGD(accountant="moments"), "accountant"),
    ],
)
def test_bad_options_raise_config_error(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        build()


def test_bad_calls_raise_config_error(digits: Dataset) -> None:
    model = _mlp(0)
    with pytest.raises(ConfigError, match="as many labels"):
        train_classifier(model, digits.x_train, digits.y_train[:5])
    with pytest.raises(ConfigError, match="neither forward nor parameters"):
        train_classifier(model, digits.x_train, digits.y_train, TrainOptions(epochs=1, dp=DPSGD()), forward=model)


@pytest.mark.parametrize("dp", ["0", "2.0"])
def test_example_runs_small(dp: str) -> None:
    script = Path(__file__).resolve().parent.parent / "examples" / "train_classifier.py"
    proc = subprocess.run([sys.executable, str(script), "--epochs", "3", "--dp-epsilon", dp], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:17].strip(): line[17:].strip() for line in proc.stdout.splitlines()}  # "label   value"
    assert float(lines["integer accuracy"]) == float(lines["from integers"])  # one accuracy, two call forms
    assert float(lines["float accuracy"]) > (0.3 if dp != "0" else 0.8)
    assert ("DP-SGD" in lines) == (dp != "0")
