"""tune(): the chosen configuration is the cheapest (or most accurate) of those that meet the target.

Oracles: the table of trials itself (recomputed ranking), ``qm.predict`` accuracy
recomputed on the returned model, and ``qm.modulus_needed``.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import secquant
from secquant.data import Dataset
from secquant.errors import ConfigError, SecquantError
from secquant.quant.calibration import MinMax, MSEOptimal
from secquant.training import accuracy
from secquant.tuning import MaxAccuracyDrop, MaxModulusBits, SearchSpace, TargetNotMetError, tune

SMALL = SearchSpace(bits=(8, 6, 4, 3), weight_methods=(MinMax(), MSEOptimal()), input_ranges=((0.0, 1.0),),
                    max_trials=40)


def _val(d: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return d.x_test[:250], d.y_test[:250]


def test_max_accuracy_drop_picks_the_smallest_modulus_that_meets_it(digits: Dataset, poly_mlp: nn.Module) -> None:
    seen: list = []
    result = secquant.tune(poly_mlp, digits.x_train[:300], _val(digits), MaxAccuracyDrop(1.0), space=SMALL,
                           on_trial=seen.append)
    assert seen == list(result.trials) and len(result.trials) <= SMALL.max_trials
    assert result.float_accuracy == accuracy(poly_mlp, *_val(digits))
    meeting = [t for t in result.trials if t.accuracy >= result.float_accuracy - 0.01]
    assert all(t.meets for t in meeting) and result.best.meets
    assert result.best.modulus == min(t.modulus for t in meeting)
    assert result.model.modulus_needed == result.best.modulus
    assert accuracy(result.model.predict, *_val(digits)) == result.best.accuracy
    uniform8 = next(t for t in result.trials if t.config == SMALL.uniform_configs()[0])
    assert uniform8.config.bits == 8 and result.best.modulus * 2 <= uniform8.modulus
    assert "*" in result.table() and result.to_dict()["best"]["meets"] is True


def test_per_layer_phase_explores_layer_and_input_bits(digits: Dataset, poly_mlp: nn.Module) -> None:
    result = tune(poly_mlp, digits.x_train[:300], _val(digits), MaxAccuracyDrop(2.0), space=SMALL)
    per_layer = [t for t in result.trials if t.phase == "per-layer"]
    assert per_layer, "the greedy phase ran"
    assert any(t.config.layer_bits for t in per_layer) and any(t.config.input_bits is not None for t in per_layer)
    uniform_best = min((t for t in result.trials if t.phase == "uniform" and t.meets), key=lambda t: t.modulus)
    assert result.best.modulus <= uniform_best.modulus


def test_max_modulus_bits_maximises_accuracy_within_the_budget(digits: Dataset, poly_mlp: nn.Module) -> None:
    space = SearchSpace(bits=(8, 5, 3), weight_methods=(MinMax(),), per_layer=False)
    budget = MaxModulusBits(40)
    result = tune(poly_mlp, digits.x_train[:300], _val(digits), budget, space=space)
    within = [t for t in result.trials if t.modulus_bits <= 40]
    assert result.best.modulus_bits <= 40
    assert result.best.accuracy == max(t.accuracy for t in within)
    assert all(t.meets == (t.modulus_bits <= 40) for t in result.trials)


def test_unreachable_target_raises_with_the_trials(digits: Dataset, poly_mlp: nn.Module) -> None:
    space = SearchSpace(bits=(2,), weight_methods=(MinMax(),), per_layer=False)
    with pytest.raises(TargetNotMetError, match="relax the target") as info:
        tune(poly_mlp, digits.x_train[:300], _val(digits), MaxAccuracyDrop(0.0), space=space)
    assert len(info.value.trials) == 1 and isinstance(info.value, SecquantError)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MaxAccuracyDrop(-1), "percentage points"),
        (lambda: MaxAccuracyDrop(True), "percentage points"),
        (lambda: MaxModulusBits(1), "MaxModulusBits.bits"),
        (lambda: MaxModulusBits(20.5), "MaxModulusBits.bits"),
        (lambda: SearchSpace(bits=()), "must not be empty"),
        (lambda: SearchSpace(bits=(1,)), r"\[2, 32\]"),
        (lambda: SearchSpace(weight_methods=("minmax",)), "range methods"),
        (lambda: SearchSpace(max_trials=0), "max_trials"),
    ],
)
def test_bad_choices_raise_config_error(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_bad_calls_raise_config_error(digits: Dataset, poly_mlp: nn.Module) -> None:
    calib, val = digits.x_train[:50], _val(digits)
    with pytest.raises(ConfigError, match="target must be"):
        tune(poly_mlp, calib, val, target=0.01)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pair"):
        tune(poly_mlp, calib, digits.x_test)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="as many labels"):
        tune(poly_mlp, calib, (digits.x_test, digits.y_test[:3]))
    with pytest.raises(ConfigError, match="SearchSpace"):
        tune(poly_mlp, calib, val, space={"bits": (4,)})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="NaN"):
        tune(poly_mlp, np.full((4, 64), np.nan), val)
    with pytest.raises(ConfigError, match="nn.Module"):
        tune("model", calib, val)  # type: ignore[arg-type]
