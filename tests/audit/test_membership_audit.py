"""End-to-end membership audits on real digits: planted leakage, DP-SGD, quantized targets, reports.

Small sizes (a few hundred rows, a handful of models), fixed seeds.  Oracles:
a deliberately overfitted model whose canaries must be detected, the DP-SGD
accountant's ε that no valid lower bound may exceed, and
``QuantizedModel.predict`` for the integer targets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from secquant.audit.membership import (
    CanarySpec,
    DPSpec,
    FullScores,
    MembershipAuditConfig,
    Target,
    TopLabel,
    TrainSpec,
    parse_target,
    run_membership_audit,
    write_report,
)
from secquant.audit.membership.targets import score_target
from secquant.audit.membership.training import train_model
from secquant.errors import ConfigError

SMALL = dict(backend="serial", progress=False, policies=(FullScores(),))


def test_overfitted_model_with_repeated_canaries_leaks() -> None:
    """200 mislabeled canaries, each included with probability 1/2 and repeated 4 times, in a
    128-unit network trained 100 epochs on 400 digits.  The one-run bound must be clearly
    positive (> 1.5 nats).  Seeds 0-4 gave 2.45-3.09, so with the fixed seed 0 (2.71)
    a false failure needs a platform change in training; across seeds we saw none in 5."""
    result = run_membership_audit(MembershipAuditConfig(
        population=400, shadows=1, evaluated=1, bits=(), dp=None, attacks=("loss",),
        train=TrainSpec(hidden=128, epochs=100, batch_size=64),
        canaries=CanarySpec(count=200, repeats=4, mislabel=True), seed=0, **SMALL,
    ))
    row = result.row("float", "full", "loss")
    assert row.one_run is not None and row.one_run.epsilon > 1.5
    assert row.one_run.correct >= 0.9 * row.one_run.guesses
    assert row.metrics.epsilon.epsilon > 1.5 and row.metrics.auc > 0.8


@pytest.mark.slow
def test_dpsgd_lower_bound_stays_under_the_accountant() -> None:
    """DP-SGD at ε = 1 (opacus RDP accountant, δ = 1e-5) against the same 200 mislabeled canaries.

    Every bound asserted is valid at 99%: the one-run bounds (2 attacks × 2 DP targets) have a
    false-failure rate of at most 4% together by the union bound, and far less in practice
    because DP-SGD's real privacy loss is below its accountant's.  The split bounds treat
    examples as independent (see metrics); they were 0.0 on seeds 0-4.  The float control,
    trained on the same canaries without DP, must exceed the accountant ε: this shows the
    audit could have caught a violation (2.75 vs 1.0 at seed 0)."""
    result = run_membership_audit(MembershipAuditConfig(
        population=600, shadows=2, evaluated=1, bits=(), dp=DPSpec(epsilon=1.0, epochs=20, batch_size=64, lr=1.0),
        dp_bits=(8,), attacks=("loss", "lira_online"), train=TrainSpec(hidden=128, epochs=100, batch_size=64),
        canaries=CanarySpec(count=200, repeats=1, mislabel=True), confidence=0.99, seed=0,
        backend="joblib", n_jobs=2, progress=False, policies=(FullScores(),),
    ))
    accountant = result.targets["dpsgd"]["accountant_epsilon"]
    assert accountant == pytest.approx(1.0, abs=0.05)
    dp_rows = [r for r in result.rows if r.target.startswith("dpsgd")]
    assert len(dp_rows) == 4
    for r in dp_rows:
        assert r.accountant_epsilon == accountant
        assert r.one_run is not None and r.one_run.epsilon < accountant, r.to_dict(curve=False)
        assert r.metrics.epsilon.epsilon < accountant
    control = max(r.one_run.epsilon for r in result.rows if r.target == "float" and r.one_run)
    assert control > accountant


def test_quantized_targets_score_through_the_integer_model() -> None:
    from secquant.data import load_dataset
    from secquant.quant.convert import quantize_model

    d = load_dataset("digits")
    x, y = d.x_train[:300].reshape(300, -1), d.y_train[:300]
    model = train_model(x, y, 10, TrainSpec(hidden=16, epochs=3), seed=0)
    for bits in (8, 2):
        expected = quantize_model(model, x, bits=bits).predict(d.x_test)
        np.testing.assert_array_equal(score_target(model, Target(bits=bits), x, d.x_test), expected)
    assert parse_target("int4") == Target(bits=4) and parse_target("dpsgd-int8").label == "dpsgd-int8"
    with pytest.raises(ConfigError):
        parse_target("int")


def test_sweep_over_bits_and_policies_writes_a_report(tmp_path) -> None:
    result = run_membership_audit(MembershipAuditConfig(
        population=300, shadows=3, evaluated=2, bits=(8, 2), dp=None, policies=(FullScores(), TopLabel()),
        train=TrainSpec(hidden=16, epochs=5), backend="serial", progress=False, seed=1,
    ))
    assert {r.target for r in result.rows} == {"float", "int8", "int2"}
    assert len(result.rows) == 3 * 2 * 3
    info = result.targets["int2"]
    # 2-bit weights either fail loudly (recorded) or give a model; both must be reported.
    assert info["models"] + info["failed_models"] == 4
    for r in result.rows:
        assert 0.0 <= r.metrics.auc <= 1.0 and r.metrics.epsilon.epsilon >= 0.0
    paths = write_report(result, tmp_path / "rep")
    names = {p.name for p in paths}
    assert {"results.json", "summary.md", "roc.png", "epsilon.png", "tpr.png", "table.txt"} <= names
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["type"] == "secquant.MembershipAudit" and len(data["rows"]) == len(result.rows)
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "int2" in summary and "one run" in summary
    assert not list((tmp_path / "rep").glob(".*"))  # no temporary files left


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(shadows=0), "shadows"),
        (dict(evaluated=20, shadows=4), "evaluated"),
        (dict(bits=(8, 1)), "bits"),
        (dict(bits=(8, 8)), "duplicates"),
        (dict(dataset="cifar"), "dataset"),
        (dict(bits=(), include_float=False, dp=None), "nothing to audit"),
        (dict(policies=()), "policy"),
        (dict(policies=(FullScores(), FullScores())), "repeat"),
        (dict(delta=1.5), "delta"),
        (dict(confidence=1.0), "confidence"),
        (dict(backend="spark"), "backend"),
        (dict(population=5), "population"),
        (dict(dp_bits=(8,), dp=None), "dp_bits"),
        (dict(attacks=("magic",)), "attack"),
        (dict(policies=("full",)), "not a release policy"),
    ],
)
def test_bad_configuration_raises_config_error(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        MembershipAuditConfig(**kwargs)


def test_bad_run_inputs_raise_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        run_membership_audit(MembershipAuditConfig(population=5000, dp=None, **SMALL))
    with pytest.raises(ConfigError, match="canaries"):
        run_membership_audit(MembershipAuditConfig(population=30, dp=None, canaries=CanarySpec(count=40), **SMALL))
    with pytest.raises(ConfigError, match="CanarySpec.repeats"):
        CanarySpec(count=10, repeats=0)
    with pytest.raises(ValueError, match="hidden"):
        TrainSpec(hidden=-1)
    with pytest.raises(ConfigError, match="epsilon"):
        DPSpec(epsilon=0)
    (tmp_path / "file").write_text("x")
    from secquant.audit.membership.result import MembershipAudit

    empty = MembershipAudit({}, (), {}, ("nothing",), 0.0)
    with pytest.raises(ConfigError, match="not a directory"):
        write_report(empty, tmp_path / "file")
    with pytest.raises(ConfigError, match="no rows"):
        write_report(empty, tmp_path / "out")
