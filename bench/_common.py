"""Shared helpers for the benchmark scripts: tables and JSON results."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from secquant.artifact import write_bytes_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A fixed-width text table of ``rows`` restricted to ``columns``."""
    cells = [columns] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with machine facts to ``bench/results/<name>.json``, atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return write_bytes_atomic(path, json.dumps({"meta": meta, **payload}, indent=2, default=str).encode())
