"""Shared helpers for the benchmark scripts: tables and JSON results."""

from __future__ import annotations

import argparse
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

def digits_bench_args(doc: str, argv: list[str] | None, inputs_help: str) -> argparse.Namespace:
    """The options of the digits bench scripts: ``--inputs`` (64), ``--repeats`` (3), ``--epochs`` (60)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=64, help=inputs_help)
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per cell; the median is kept")
    parser.add_argument("--epochs", type=int, default=60)
    return parser.parse_args(argv)


def digits_models(epochs: int) -> dict[str, Any]:
    """Two small digits models, 6-bit, trained with a fixed seed: ``linear`` (64 -> 10) and
    ``square-mlp`` (64 -> 16 -> Square -> 10)."""
    import torch
    from torch import nn

    import secquant
    from secquant.data import load_dataset
    from secquant.nn import Square
    from secquant.training import TrainOptions, train_classifier

    d = load_dataset("digits")
    out = {}
    for name, width in (("linear", 0), ("square-mlp", 16)):
        torch.manual_seed(0)
        net = (nn.Sequential(nn.Linear(64, 10)) if not width
               else nn.Sequential(nn.Linear(64, width), Square(), nn.Linear(width, 10)))
        train_classifier(net, d.x_train, d.y_train, TrainOptions(epochs=max(1, epochs // 10), lr=1e-2))
        out[name] = secquant.quantize_model(net.eval(), d.x_train, bits=6)
    return out


def timed_evaluations(server: Any, payload: bytes, repeats: int) -> tuple[list[float], bytes]:
    """``repeats`` timed ``server.evaluate(payload)`` calls (seconds) and the last response."""
    times, response = [], b""
    for _ in range(repeats):
        t0 = time.perf_counter()
        response = server.evaluate(payload)
        times.append(time.perf_counter() - t0)
    return times, response
