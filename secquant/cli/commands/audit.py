"""``secquant audit ...``: privacy audits.

Each audit kind lives in :mod:`secquant.cli.audit_commands` as a module with
``register(subparsers)``, discovered like the top-level commands.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``audit`` and every discovered audit kind under it."""
    from secquant.cli import audit_commands

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="measure what a mechanism or a quantized model leaks"
    )
    sub = parser.add_subparsers(dest="audit_kind", metavar="KIND", required=True)
    for info in sorted(pkgutil.iter_modules(audit_commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{audit_commands.__name__}.{info.name}").register(sub)
