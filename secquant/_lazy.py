"""Lazy package attributes (PEP 562), so ``import secquant`` loads no heavy extra."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` on first access and caches it.

    Args:
        package: ``__name__`` of the package that uses it.
        table: Attribute name -> module that defines it; a leading ``.`` is
            relative to ``package``.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package if module.startswith(".") else None), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
