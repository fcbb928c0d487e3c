"""Extraction audit, equation solving on a logistic model (issue 13, section 5).

Oracles: the victim's own dequantized ``forward_int`` (the surrogate must
reproduce it to 1e-9 at full precision), the auditor's noiseless affine fit
(checked on fresh points), an underdetermined system that must fail, and the
accountant's ε for the noise.  Seeds are fixed; statistical claims state
their false-failure rates.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from secquant.audit.extraction.attacks import AttackKind, equation_solving
from secquant.audit.extraction.audit import (
    ExtractionAuditConfig,
    run_extraction_audit,
    true_affine,
)
from secquant.audit.extraction.oracle import LocalOracle, policy_in_steps
from secquant.audit.extraction.report import write_report
from secquant.audit.extraction.victims import Victim, train_victim
from secquant.dp.release import (
    DiscreteGaussianLogits,
    FullLogits,
    RoundedLogits,
    TopLabel,
)
from secquant.errors import ConfigError


@pytest.fixture(scope="module")
def logistic() -> Victim:
    return train_victim("logistic", "breast_cancer", epochs=30, seed=0)


def _error(surrogate, truth) -> float:  # type: ignore[no-untyped-def]
    return float(np.linalg.norm(surrogate.parameters - truth) / np.linalg.norm(truth))


def test_full_precision_logistic_is_extracted_exactly_with_31_queries(logistic: Victim) -> None:
    qm = logistic.qm
    assert int(np.prod(qm.interface().input_shape)) == 30
    oracle = LocalOracle(qm, FullLogits())
    stolen = equation_solving(oracle, 31, np.random.default_rng(0))
    assert oracle.queries == 31
    np.testing.assert_allclose(stolen.scores(logistic.x_heldout), qm.predict(logistic.x_heldout), rtol=0, atol=1e-9)
    victim_top = np.argmax(qm.forward_int(qm.quantize_input(logistic.x_heldout)), axis=1)
    assert np.mean(np.argmax(stolen.scores(logistic.x_heldout), axis=1) == victim_top) == 1.0
    truth, residual = true_affine(qm)
    assert truth is not None and residual.max() < 1e-9 and _error(stolen, truth) < 1e-9


def test_fewer_queries_than_unknowns_do_not_extract(logistic: Victim) -> None:
    """16 < d + 1 = 31 equations: the minimum-norm solution misses most of the model (planted failure)."""
    stolen = equation_solving(LocalOracle(logistic.qm, FullLogits()), 16, np.random.default_rng(0))
    truth, _ = true_affine(logistic.qm)
    assert _error(stolen, truth) > 0.5


def test_noise_for_epsilon_one_multiplies_parameter_error_at_31_queries(logistic: Victim) -> None:
    """σ calibrated to ε <= 1 per query (both logits, δ = 1e-5): over 5 seeds the parameter error at 31
    queries is at least 10x the full-precision one (which is ~1e-13) and above 1e-4 every time.  Observed
    errors are ~1e-2: a noise realisation 100x below its typical size on all 62 coordinates would be needed
    to fail, probability far below 1e-9."""
    noisy = DiscreteGaussianLogits.calibrated(1.0, outputs=2)
    eps, delta = noisy.privacy(2)
    assert eps <= 1.0 and delta == 1e-5 and noisy.privacy(2)[0] > 0.9  # calibrated, not over-noised
    truth, _ = true_affine(logistic.qm)
    for seed in range(5):
        full = _error(equation_solving(LocalOracle(logistic.qm, FullLogits(), seed), 31, np.random.default_rng(seed)), truth)
        noise = _error(equation_solving(LocalOracle(logistic.qm, noisy, seed), 31, np.random.default_rng(seed)), truth)
        assert noise >= 10 * max(full, 1e-12) and noise > 1e-4, (seed, full, noise)


def test_oracle_releases_what_the_policy_says(logistic: Victim) -> None:
    qm, x = logistic.qm, logistic.x_heldout[:50]
    iface = qm.interface()
    np.testing.assert_array_equal(LocalOracle(qm, FullLogits()).query(x), qm.predict(x))
    steps = policy_in_steps(RoundedLogits(0), iface.output_scale, 2)
    unit = np.array([2.0 ** -p.bits for p in steps]) / iface.output_scale  # one policy unit, in logits
    assert np.all((unit > 0.5) & (unit <= 1.0))
    rounded = LocalOracle(qm, RoundedLogits(0)).query(x)
    assert np.all(np.abs(rounded - qm.predict(x)) <= unit / 2 + 1e-12)
    np.testing.assert_allclose(rounded / unit, np.round(rounded / unit), atol=1e-9)  # on the grid
    labels = LocalOracle(qm, TopLabel()).query(x)
    np.testing.assert_array_equal(labels, np.argmax(qm.predict(x), axis=1))
    with pytest.raises(ConfigError, match="needs released logits"):
        equation_solving(LocalOracle(qm, TopLabel()), 31, np.random.default_rng(0))


def test_audit_finds_the_budget_and_writes_a_report(logistic: Victim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    noisy = DiscreteGaussianLogits.calibrated(1.0, outputs=2)
    cfg = ExtractionAuditConfig(policies=(FullLogits(), noisy, TopLabel()), attacks=(AttackKind.EQUATION,),
                                budgets=(16, 31, 64))
    result = run_extraction_audit(logistic, cfg)
    full = {s["attack"]: s for s in result.summary() if s["policy"] == "full"}["equation"]
    assert full["queries_to_99"] == 31 and full["budget"] == 16 and full["target_reached"]
    assert result.row("full", "equation", 31).fidelity == 1.0
    assert result.row(noisy.label, "equation", 31).parameter_error > 10 * result.row("full", "equation", 31).parameter_error
    assert result.recommended_budget("full") == (16, True)
    assert any("top1" in n and "skipped" in n for n in result.notes)
    assert result.epsilon[noisy.label][0] <= 1.0
    paths = write_report(result, tmp_path / "report")
    names = {p.name for p in paths}
    assert names == {"results.json", "table.txt", "fidelity.png", "summary.md"}
    assert (tmp_path / "report" / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "report" / "results.json").read_text())
    assert data["victim"]["affine"] is True and len(data["rows"]) == 6
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| full | none (no noise) | at most 16 queries per key |" in summary


@pytest.mark.parametrize("bad", [
    {"policies": ()}, {"policies": ("full",)}, {"policies": (FullLogits(), FullLogits())},
    {"budgets": (31, 16)}, {"budgets": (0,)}, {"target_fidelity": 1.5}, {"attacks": ("guess",)}, {"trials": 0},
])
def test_config_refuses_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ExtractionAuditConfig(**bad)
