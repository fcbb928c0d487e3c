"""``import secquant`` is cheap, and every public subpackage is reachable as an attribute of it.

Each check runs in a fresh interpreter (a subprocess), so nothing imported by
other tests can make an attribute appear.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import secquant

PRESENT = [n for n in secquant.SUBPACKAGES if importlib.util.find_spec(f"secquant.{n}") is not None]


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_issue_examples_work_in_a_fresh_interpreter() -> None:
    out = _fresh(
        "import secquant\n"
        "print(secquant.nn.Square.__name__, secquant.audit.audit_mechanism.__name__)\n"
    )
    assert out.split() == ["Square", "audit_mechanism"]


@pytest.mark.parametrize("name", PRESENT)
def test_each_subpackage_is_a_lazy_attribute(name: str) -> None:
    code = (
        "import json, sys, secquant\n"
        f"before = 'secquant.{name}' in sys.modules\n"
        f"mod = getattr(secquant, {name!r})\n"
        f"print(json.dumps([before, mod.__name__, {name!r} in dir(secquant)]))\n"
    )
    before, module_name, listed = json.loads(_fresh(code))
    assert module_name == f"secquant.{name}" and listed
    assert not before or name == "quant"  # secquant.quant.primitives is part of the cheap core


def test_import_is_cheap_and_unknown_names_raise_attribute_error() -> None:
    code = (
        "import json, sys, secquant\n"
        "heavy = sorted(m for m in ('torch', 'tenseal', 'phe', 'fastapi', 'ray') if m in sys.modules)\n"
        "try:\n"
        "    secquant.no_such_thing\n"
        "    missing = 'no error'\n"
        "except AttributeError as exc:\n"
        "    missing = str(exc)\n"
        "print(json.dumps([heavy, missing]))\n"
    )
    heavy, missing = json.loads(_fresh(code))
    assert heavy == [] and "no_such_thing" in missing
    absent = [n for n in secquant.SUBPACKAGES if n not in PRESENT]
    for name in absent:  # named in the API but not in this build: an AttributeError, not an ImportError
        with pytest.raises(AttributeError, match=name):
            getattr(secquant, name)
