"""Where the noise lives: ``secquant.dp`` is lazy, secure aggregation never loads ``secquant.audit``.

Each check runs in a fresh interpreter, so modules imported by other tests
cannot hide a wrong import.  Oracles: ``sys.modules`` (planted: an
aggregation module importing ``secquant.audit.samplers`` makes the first test
fail) and object identity of the aliases.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import secquant.audit.accounting
import secquant.audit.mechanisms
import secquant.audit.samplers
import secquant.dp
import secquant.dp.accounting
import secquant.dp.mechanisms
import secquant.dp.samplers


def _fresh(code: str) -> object:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_secure_aggregation_takes_its_noise_from_dp_not_audit() -> None:
    loaded = _fresh(
        "import json, sys\n"
        "import numpy as np\n"
        "import secquant.protocol.aggregation as agg\n"
        "from secquant.protocol.aggregation.encoding import noise_shares, released_sum_mechanism\n"
        "cfg = agg.RoundConfig(n_clients=3, dim=4, key_bits=512, allow_insecure_key_bits=True)\n"
        "noise_shares(cfg, 2, np.random.default_rng(0))\n"
        "released_sum_mechanism(cfg, np.zeros((2, 4)))(np.zeros(4), np.random.default_rng(1), 5)\n"
        "cfg.epsilon()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('secquant.audit', 'secquant.dp')))))\n"
    )
    assert "secquant.dp.samplers" in loaded and "secquant.dp.mechanisms.distributed" in loaded  # type: ignore[operator]
    assert not [m for m in loaded if m.startswith("secquant.audit")]  # type: ignore[union-attr]


def test_dp_exports_lazily() -> None:
    before, after, name = _fresh(
        "import json, sys, secquant\n"
        "before = sorted(m for m in sys.modules if m.startswith('secquant.dp.'))\n"
        "cls = secquant.dp.DistributedDiscreteGaussian\n"
        "after = sorted(m for m in sys.modules if m.startswith('secquant.dp.'))\n"
        "print(json.dumps([before, after, cls.__module__]))\n"
    )  # type: ignore[misc]
    assert before == [] and "secquant.dp.mechanisms" in after and name == "secquant.dp.mechanisms.distributed"


def test_every_listed_name_resolves_and_unknown_names_raise_attribute_error() -> None:
    for name in secquant.dp.__all__:
        assert getattr(secquant.dp, name) is not None
    assert set(secquant.dp.__all__) <= set(dir(secquant.dp))
    with pytest.raises(AttributeError, match="no_such_mechanism"):
        secquant.dp.no_such_mechanism  # noqa: B018


@pytest.mark.skipif(importlib.util.find_spec("secquant.dp.release") is None, reason="secquant/dp/release.py not yet written")
def test_release_policies_are_attributes_of_dp() -> None:
    import secquant.dp.release as release

    for name in release.__all__:
        assert getattr(secquant.dp, name) is getattr(release, name)
        assert name in secquant.dp.__all__
    assert secquant.dp.ReleasePolicy is release.ReleasePolicy


def test_former_audit_paths_are_aliases_of_dp() -> None:
    assert secquant.audit.mechanisms.LaplaceMechanism is secquant.dp.mechanisms.LaplaceMechanism
    assert secquant.audit.mechanisms.DistributedDiscreteGaussian is secquant.dp.DistributedDiscreteGaussian
    assert secquant.audit.samplers.sample_discrete_gaussian is secquant.dp.samplers.sample_discrete_gaussian
    assert secquant.audit.accounting.epsilon_for_event is secquant.dp.accounting.epsilon_for_event
    assert secquant.audit.sample_discrete_laplace is secquant.dp.sample_discrete_laplace
    from secquant.audit.cases import builtin_cases

    assert secquant.audit.mechanisms.builtin_cases is builtin_cases
    for name in secquant.audit.mechanisms.__all__:
        assert getattr(secquant.audit.mechanisms, name) is not None
