"""What BFV circuit privacy costs: off, rerandomize and flood side by side.

For the digits MLP (64 -> 32 -> Square -> 10, 8-bit, as in
``tests/backends/conftest.py``) and each BFV mode (latency, throughput), the
model is compiled three times, with ``circuit_privacy`` off, rerandomize and
flood, and each is measured in the same run on the same ``--inputs`` test
inputs:

* ``poly_degree`` and ``coeff_modulus_total_bits`` (flood reserves
  ``flood_reserve_bits(N)`` = 40 + log2 N + 2 bits of noise budget, so the
  planner may pick larger parameters);
* request and response bytes of one query (the length of the
  ``client.encrypt`` payload and of the ``server.evaluate`` result);
* seconds per ``evaluate`` (median of ``--repeats``) and its ratio to OFF of
  the same mode;
* the noise budget the client measures after decrypt (SEAL's invariant noise
  budget) next to the planner's estimate of the final budget;
* bit-exactness against ``QuantizedModel.forward_int``.

Prints a table and writes ``bench/results/circuit_privacy.json``.

Usage: ``python bench/circuit_privacy.py [--inputs 4] [--repeats 3] [--epochs 60]``
(a minute or two on two cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, timed_evaluations, write_json

import secquant
from secquant.data import load_dataset
from secquant.nn import Square

MODES = ("latency", "throughput")
PRIVACY = ("off", "rerandomize", "flood")
COLUMNS = ["mode", "privacy", "poly_degree", "coeff_modulus_total_bits", "request_bytes", "response_bytes",
           "evaluate_s", "ratio_to_off", "est_final_budget_bits", "measured_budget_bits", "bit_exact"]


def digits_mlp(epochs: int, bits: int = 8) -> tuple[secquant.QuantizedModel, np.ndarray]:
    """Train and quantize digits 64 -> 32 -> Square -> 10; return it and the test inputs (float)."""
    ds = load_dataset("digits")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    xt, yt = torch.tensor(x), torch.tensor(ds.y_train)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    qm = secquant.quantize_model(model, x[:512], bits=bits)
    return qm, ds.x_test.reshape(len(ds.x_test), -1)


def measure(qm: secquant.QuantizedModel, xq: Any, mode: str, privacy: str, repeats: int) -> dict[str, Any]:
    """One cell: compile, key setup, one query, ``repeats`` timed evaluations."""
    em = secquant.compile(qm, "bfv", mode=mode, circuit_privacy=privacy)
    params = em.parameters()
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(xq)
    times, response = timed_evaluations(server, payload, repeats)
    out = client.decrypt(response)
    exact = bool(np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object)))
    return {"mode": mode, "privacy": privacy, "poly_degree": params["poly_degree"],
            "coeff_modulus_total_bits": params["coeff_modulus_total_bits"],
            "noise_margin_bits": params["noise_margin_bits"],
            "reserved_budget_bits": params["circuit_privacy"]["reserved_budget_bits"],
            "request_bytes": len(payload), "response_bytes": len(response),
            "evaluate_s": statistics.median(times), "evaluate_s_all": times,
            "est_final_budget_bits": params["noise_budget_estimate"][-1]["budget_bits"],
            "measured_budget_bits": client.last_noise_budget, "bit_exact": exact}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=4, help="test inputs per query (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per cell; the median is kept")
    parser.add_argument("--epochs", type=int, default=60, help="full-batch Adam epochs for the MLP (default 60)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args(argv)

    qm, x_test = digits_mlp(args.epochs)
    xq = qm.quantize_input(x_test[:args.inputs])
    rows = []
    for mode in args.modes:
        for privacy in PRIVACY:
            row = measure(qm, xq, mode, privacy, args.repeats)
            rows.append(row)
            print(f"{mode:10s} {privacy:11s} evaluate {row['evaluate_s']:.3f} s", flush=True)
    for row in rows:
        off = next(r for r in rows if r["mode"] == row["mode"] and r["privacy"] == "off")
        row["ratio_to_off"] = row["evaluate_s"] / off["evaluate_s"]
    print(table(rows, COLUMNS))
    path = write_json("circuit_privacy", {"network": "digits-mlp", "bits": 8, "inputs": args.inputs,
                                          "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
