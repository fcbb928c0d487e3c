"""``secquant.audit`` is measurement only and reachable lazily from ``import secquant`` (issue 12).

Each check runs in a fresh interpreter so that modules imported by other tests
cannot make an attribute appear.  Oracle: the attribute's identity and
``sys.modules`` (importing the package must not load the auditor or the
membership audit before they are used).
"""

from __future__ import annotations

import json
import subprocess
import sys

import secquant.audit


def _fresh(code: str) -> object:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_audit_mechanism_is_an_attribute_after_import_secquant() -> None:
    before, name, module, membership = _fresh(
        "import json, sys, secquant\n"
        "before = sorted(m for m in sys.modules if m.startswith('secquant.audit'))\n"
        "f = secquant.audit.audit_mechanism\n"
        "run = secquant.audit.membership.run_membership_audit\n"
        "print(json.dumps([before, f.__name__, f.__module__, run.__module__]))\n"
    )  # type: ignore[misc]
    assert before == [] and name == "audit_mechanism" and module == "secquant.audit.auditor"
    assert membership == "secquant.audit.membership.audit"


def test_listed_names_and_subpackages_resolve() -> None:
    for name in secquant.audit.__all__:
        assert getattr(secquant.audit, name) is not None
    assert "membership" in dir(secquant.audit) and secquant.audit.membership.__name__ == "secquant.audit.membership"
