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

def digits_models(epochs: int) -> dict[str, Any]:
    """Two small digits models, 6-bit, trained with a fixed seed: ``linear`` (64 -> 10) and
    ``square-mlp`` (64 -> 16 -> Square -> 10)."""
    import torch
    from torch import nn

    import secquant
    from secquant.data import load_dataset
    from secquant.nn import Square

    d = load_dataset("digits")
    xt, yt = torch.tensor(d.x_train), torch.tensor(d.y_train)
    out = {}
    for name, net in (("linear", nn.Sequential(nn.Linear(64, 10))),
                      ("square-mlp", nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10)))):
        torch.manual_seed(0)
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        for _ in range(epochs):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
        out[name] = secquant.quantize_model(net.eval(), d.x_train, bits=6)
    return out
