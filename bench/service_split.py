"""``secquant serve --executor fork:2``: one request of several slot batches, split into jobs or run whole.

A real server on 127.0.0.1 serves the digits MLP (BFV throughput, N=8192,
``--batches`` slot batches per request) with two forked workers.  Each
repeat times one request of ``--batches`` x 8,192 inputs end to end through
:class:`secquant.protocol.Client` (encrypt, upload, evaluate, download,
decrypt), first with the request split into one job per slot batch (the
default), then with the split turned off (``Offload._split = None``: one job
on one worker, as before), side by side.  Every answer is checked bit-exact
against ``qm.forward_int``.

Prints a table and writes ``bench/results/service_split.json``.

Usage: ``python bench/service_split.py [--batches 2] [--repeat 3] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import digits_models, table, write_json

from secquant.protocol import Client
from secquant.protocol.inference import ServiceConfig, create_app
from secquant.protocol.inference.binding import ModelBinding
from secquant.protocol.runner import ServerThread


def _timed(url: str, token: str, xq: np.ndarray, ref: np.ndarray) -> float:
    with Client(url, token=token) as client:
        client.forward_int(xq[:1])  # session and keys outside the timing
        t0 = time.perf_counter()
        out = client.forward_int(xq)
        seconds = time.perf_counter() - t0
    if not np.array_equal(np.asarray(out, dtype=object), ref):
        raise SystemExit("an answer differs from qm.forward_int")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)

    from secquant.data import load_dataset

    data, qm = load_dataset("digits"), digits_models(args.epochs)["square-mlp"]
    slots = 8192
    n = args.batches * slots
    xq = qm.quantize_input(np.concatenate([data.x_test] * -(-n // len(data.x_test)))[:n])
    ref = np.asarray(qm.forward_int(xq), dtype=object)
    token = secrets.token_urlsafe(24)
    binding = ModelBinding.build(qm, "bfv", {"mode": "throughput", "poly_degree": slots})
    with tempfile.TemporaryDirectory() as keys:
        config = ServiceConfig(token=token, cache_dir=keys, executor="fork:2", max_batch=n)
        server = ServerThread(create_app(binding, config)).start()
        try:
            offload: Any = server._server.config.app.state.secquant.offload
            split = offload._split
            times: dict[str, list[float]] = {"split": [], "whole": []}
            for _ in range(args.repeat):
                for name in ("split", "whole"):
                    offload._split = split if name == "split" else None
                    times[name].append(_timed(server.url, token, xq, ref))
        finally:
            server.stop()
    rows = [{"request": name, "inputs": n, "slot_batches": args.batches, "workers": 2,
             "median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
             "inputs_per_s": n / statistics.median(ts)} for name, ts in times.items()]
    rows[0]["speedup_vs_whole"] = rows[1]["median_s"] / rows[0]["median_s"]
    print(table(rows, ["request", "inputs", "slot_batches", "workers", "median_s", "min_s", "max_s",
                       "inputs_per_s", "speedup_vs_whole"]))
    print(f"wrote {write_json('service_split', {'args': vars(args), 'rows': rows, 'times': times})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
