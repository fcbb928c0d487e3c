"""Cost of release noise on encrypted outputs: full logits against discrete Gaussian noise, side by side.

Digits models (64 -> 10 linear, and 64 -> 16 -> Square -> 10), 6-bit, are
compiled for BFV and CKKS in both modes with ``release=None`` and with
``DiscreteGaussianLogits(σ=4, resolution_bits=0)``.  Per cell: the parameters
the planner chose (N, plaintext-modulus bits for BFV, coefficient-modulus
bits), the response bytes, the median evaluation time and its ratio to full
logits (same model, scheme and mode, one run), and the measured noise's
standard deviation against ``qm.forward_int``.

    python bench/release_noise.py --inputs 64 --repeats 3
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
from secquant.dp.release import DiscreteGaussianLogits

COLUMNS = ["model", "scheme", "mode", "release", "poly_degree", "plain_bits", "log2_q", "response_bytes",
           "evaluate_s", "ratio_to_full", "noise_std"]


def measure(qm: secquant.QuantizedModel, scheme: str, mode: str, release: Any, xq: Any,
            repeats: int) -> dict[str, Any]:
    """One cell: compile, keys, ``repeats`` timed evaluations of one batch, the noise it released."""
    em = secquant.compile(qm, scheme, mode=mode, release=release)
    params = em.parameters()
    client = em.client()
    server = em.server(client.public_material())
    payload = client.encrypt(xq)
    times, response = timed_evaluations(server, payload, repeats)
    noise = np.asarray(client.decrypt(response), dtype=object) - np.asarray(qm.forward_int(xq), dtype=object)
    plain = params.get("plain_moduli")
    return {"scheme": scheme, "mode": mode, "release": "full" if release is None else release.label,
            "poly_degree": params["poly_degree"],
            "plain_bits": sum(int(t).bit_length() for t in plain) if plain else "-",
            "log2_q": params["coeff_modulus_total_bits"], "response_bytes": len(response),
            "evaluate_s": statistics.median(times), "noise_std": float(np.std(noise.astype(np.float64)))}


def main(argv: list[str] | None = None) -> int:
    args = digits_bench_args(__doc__, argv, "inputs per batch (latency: the first 4)")
    x_test = load_dataset("digits").x_test
    noisy = DiscreteGaussianLogits(4.0, resolution_bits=0)
    rows = []
    for name, qm in digits_models(args.epochs).items():
        for scheme in ("bfv", "ckks"):
            for mode in ("throughput", "latency"):
                xq = qm.quantize_input(x_test[: args.inputs if mode == "throughput" else 4])
                full, noise = (measure(qm, scheme, mode, r, xq, args.repeats) for r in (None, noisy))
                for row in (full, noise):
                    row.update(model=name, ratio_to_full=row["evaluate_s"] / full["evaluate_s"])
                rows += [full, noise]
    print(table(rows, COLUMNS))
    path = write_json("release_noise", {"bits": 6, "sigma": 4.0, "inputs": args.inputs, "repeats": args.repeats,
                                        "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
