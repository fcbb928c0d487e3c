"""BFV on a purely linear model: logistic regression from the zoo (issue 12).

Latency mode used to crash with ``TypeError: rotate_rows(): incompatible function
arguments ... None``: the only stage is the client-gathered first stage, whose
folds rotate, but the server loaded Galois keys only when a baby-step giant-step
stage existed.  Oracle: ``qm.forward_int``, bit for bit, on real breast-cancer
test rows.
"""

from __future__ import annotations

import numpy as np
import pytest

import secquant
from secquant import models
from secquant.data import load_dataset

pytest.importorskip("tenseal")


@pytest.fixture(scope="module")
def logistic() -> tuple[secquant.QuantizedModel, np.ndarray]:
    entry = models.ZOO[models.ZooName.LOGISTIC]
    ds = load_dataset(entry.dataset)
    net = models.train(models.zoo_model(entry.name), ds.x_train, ds.y_train, epochs=5)
    qm = secquant.quantize_model(net, ds.x_train[:256], config=entry.quant)
    return qm, ds.x_test


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_logistic_regression_exact(logistic, mode: str) -> None:
    qm, x_test = logistic
    em = secquant.compile(qm, "bfv", mode=mode)
    xq = qm.quantize_input(x_test[:20])
    out = em.forward_int(xq)
    np.testing.assert_array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object))
    assert em.parameters()["mode"] == mode


def test_latency_server_refuses_material_without_the_fold_keys(logistic) -> None:
    """The gathered stage rotates, so its server needs Galois keys even without a baby-step giant-step stage."""
    from secquant.artifact import encode_artifact, read_artifact
    from secquant.backends.bfv.evaluate import galois_elements
    from secquant.backends.bfv.wire import PUBLIC
    from secquant.errors import ConfigError

    qm, _ = logistic
    em = secquant.compile(qm, "bfv", mode="latency")
    assert galois_elements(em.backend.params)  # the folds rotate
    version, meta, arrays = read_artifact(em.client().public_material(), PUBLIC)
    stripped = {k: (v[:0] if k.startswith("galois") else v) for k, v in arrays.items()}
    with pytest.raises(ConfigError, match="Galois keys"):
        em.server(encode_artifact(PUBLIC, version, meta, stripped))
