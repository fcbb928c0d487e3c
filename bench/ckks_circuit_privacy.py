"""Cost of CKKS circuit privacy: off, re-randomize and Gaussian flooding, side by side.

Digits models (64 -> 10 linear, and 64 -> 16 -> Square -> 10), 6-bit, are
compiled for CKKS with each ``circuit_privacy`` in both modes.  Per cell: the
ring and modulus the planner chose, the stated error bound (output steps), the
largest measured deviation of the raw decoded outputs from ``qm.forward_int``,
the response bytes, and the median evaluation time with its ratio to ``off``
(same model and mode, one run).  Cells the planner refuses at the precision
target are listed with the reason.

    python bench/ckks_circuit_privacy.py --inputs 64 --repeats 3
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import digits_bench_args, digits_models, table, timed_evaluations, write_json

import secquant
from secquant.data import load_dataset
from secquant.errors import ParameterError

PRIVACY = ("off", "rerandomize", "flood")
COLUMNS = ["model", "mode", "privacy", "poly_degree", "log2_q", "stated_error", "measured_error",
           "response_bytes", "evaluate_s", "ratio_to_off", "note"]


def measure(name: str, qm: secquant.QuantizedModel, xq: Any, mode: str, privacy: str, repeats: int) -> dict[str, Any]:
    """One cell: compile, keys, one query, ``repeats`` timed evaluations, the raw deviation."""
    row: dict[str, Any] = {"model": name, "mode": mode, "privacy": privacy}
    try:
        em = secquant.compile(qm, "ckks", mode=mode, circuit_privacy=privacy, precision_bits=10)
    except ParameterError as exc:
        return {**row, "note": f"refused: {str(exc)[:80]}"}
    params = em.parameters()
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(xq)
    times, response = timed_evaluations(server, payload, repeats)
    raw, _ = client.decrypt_slots(response)
    deviation = float(np.max(np.abs(raw - np.asarray(qm.forward_int(xq), dtype=np.float64))))
    return {**row, "poly_degree": params["poly_degree"], "log2_q": params["coeff_modulus_total_bits"],
            "stated_error": params["max_abs_error"], "measured_error": deviation,
            "response_bytes": len(response), "evaluate_s": statistics.median(times), "note": ""}


def main(argv: list[str] | None = None) -> int:
    args = digits_bench_args(__doc__, argv, "inputs per query (latency: the first 4)")
    x_test = load_dataset("digits").x_test
    rows = []
    for name, qm in digits_models(args.epochs).items():
        for mode in ("throughput", "latency"):
            xq = qm.quantize_input(x_test[: args.inputs if mode == "throughput" else 4])
            cells = [measure(name, qm, xq, mode, privacy, args.repeats) for privacy in PRIVACY]
            off = cells[0].get("evaluate_s")
            for cell in cells:
                if off and "evaluate_s" in cell:
                    cell["ratio_to_off"] = cell["evaluate_s"] / off
            rows += cells
    print(table(rows, COLUMNS))
    path = write_json("ckks_circuit_privacy", {"bits": 6, "precision_bits": 10, "inputs": args.inputs,
                                               "repeats": args.repeats, "rows": rows})
    print(f"wrote {path}")
    ok = all(r.get("measured_error", 0.0) <= r.get("stated_error", np.inf) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
