"""Throughput batches on a Ray cluster; the secret key never leaves this process.

``em.forward_int(xq, executor=RayExecutor(address))`` encrypts each batch here,
evaluates it on a Ray actor that holds only the server role (built once per
worker from the public material), and decrypts it here; at most ``in_flight``
batches are outstanding.  ``--address local`` starts a Ray cluster on this
machine (loopback only); ``--address ray://HOST:10001`` uses a real one
(``ray start --head`` there; see docs/scale-out.md).

Run: python examples/ray_scale_out.py [--address local] [--workers 2] [--batches 2]
     [--schemes bfv ckks] [--epochs 40] [--bfv-degree 8192]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import secquant
from secquant import models
from secquant.backends.executors import RayExecutor
from secquant.data import load_dataset


def check(scheme: str, out: np.ndarray, ref: np.ndarray, bound: float | None) -> str:
    """``bit-exact: True`` (BFV) or ``within bound: True`` (CKKS, |error| <= the stated bound)."""
    if scheme == "bfv":
        return f"bit-exact: {bool(np.array_equal(np.asarray(out, dtype=object), ref))}"
    err = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - ref.astype(np.float64))))
    return f"within bound: {bound is not None and err <= bound} (max error {err:.3g} <= {bound})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="local", help="'local', 'auto', 'host:port' or 'ray://host:10001'")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (each holds one server role)")
    parser.add_argument("--batches", type=int, default=2, help="full batches to run (the test inputs repeated)")
    parser.add_argument("--schemes", nargs="+", default=["bfv", "ckks"], choices=["bfv", "ckks"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--bfv-degree", type=int, default=None, help="force the BFV ring degree N (e.g. 8192)")
    args = parser.parse_args()

    ds = load_dataset("digits")
    model = models.train(models.digits_mlp(), ds.x_train, ds.y_train, epochs=args.epochs)
    qm = secquant.quantize_model(model, ds.x_train, bits=8)
    with RayExecutor(args.address, workers=args.workers) as executor:
        for scheme in args.schemes:
            options = {"poly_degree": args.bfv_degree} if scheme == "bfv" and args.bfv_degree else {}
            em = secquant.compile(qm, scheme, mode="throughput", **options)
            batch = em.backend.batch_size()
            total = args.batches * batch
            xq = qm.quantize_input(np.concatenate([ds.x_test] * -(-total // len(ds.x_test)))[:total])
            ref = np.asarray(qm.forward_int(xq), dtype=object)
            t0 = time.perf_counter()
            out = em.forward_int(xq, executor=executor)
            rate = total / (time.perf_counter() - t0)
            t = em.last_timings
            stats = executor.last_stats
            print(f"{scheme}: {args.batches} batches of {batch} on {executor.workers} Ray workers: {rate:.0f} inputs/s "
                  f"(first call includes building the workers), sent {t['request_bytes'] / total:.0f} B/input, "
                  f"retries {stats.retries if stats else 0}, "
                  f"{check(scheme, out, ref, em.parameters().get('max_abs_error_int'))}")


if __name__ == "__main__":
    main()
