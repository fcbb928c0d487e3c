"""Extraction audit, learning attack on the digits MLP (issue 13, section 5 acceptance).

Oracle: the victim's own top class on the 450 held-out digits (fidelity).
Fixed seeds: 3 trials per cell.  Measured with seed 0 (1500 surrogate
steps): full logits 0.96 at 50 queries and 0.98 at 200; logits rounded to
multiples of 8 (``lround-3``) 0.93 at 50; noise of σ = 4 logits 0.84 at 50.
Over audit seeds 0 to 7, the 3-trial mean gap to full logits at 50 queries
was 0.030 to 0.055 for ``lround-3`` and 0.12 to 0.18 for σ = 4, and full
logits at 200 queries reached 0.973 to 0.984.  Treating the seed-to-seed
spread as normal (sd about 0.01), the asserted margins (gap > 0, gap > 0.04,
fidelity >= 0.9) fail for fewer than 1e-4 of seed choices.
"""

from __future__ import annotations

import numpy as np
import pytest

from secquant.audit.extraction.attacks import AttackKind
from secquant.audit.extraction.audit import ExtractionAuditConfig, run_extraction_audit
from secquant.audit.extraction.victims import train_victim
from secquant.dp.release import DiscreteGaussianLogits, FullLogits, RoundedLogits


@pytest.mark.slow
def test_learning_attack_steals_the_digits_mlp_and_coarser_releases_slow_it() -> None:
    victim = train_victim("mlp", "digits", epochs=30, seed=0)
    assert victim.qm.interface().output_shape[-1] == 10
    cfg = ExtractionAuditConfig(policies=(FullLogits(), RoundedLogits(-3), DiscreteGaussianLogits(4.0)),
                                attacks=(AttackKind.LEARNING,), budgets=(50, 200), trials=3)
    result = run_extraction_audit(victim, cfg)
    assert not result.victim["affine"] and result.victim["accuracy"] > 0.9
    full50, full200 = result.row("full", "learning", 50), result.row("full", "learning", 200)
    assert full200.fidelity >= 0.9 and full200.fidelity_min >= 0.9
    rounded, noisy = result.row("lround-3", "learning", 50), result.row("dgauss4", "learning", 50)
    assert rounded.fidelity < full50.fidelity, (rounded, full50)
    assert noisy.fidelity < full50.fidelity - 0.04, (noisy, full50)
    assert result.epsilon["dgauss4"][0] < 0.1  # heavy noise: tiny ε per query, yet 200 queries still steal most
    assert result.row("dgauss4", "learning", 200).fidelity > 0.9
    gaps = {p: full50.fidelity - result.row(p, "learning", 50).fidelity for p in ("lround-3", "dgauss4")}
    print("fidelity gap at 50 queries:", {k: round(v, 4) for k, v in gaps.items()}, np.round(result.seconds, 1))
