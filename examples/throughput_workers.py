"""Throughput mode on whole batches, in one process and in forked workers, side by side.

A batch is as many inputs as a ciphertext has slots; batches are independent,
so ``em.forward_int(xq, workers=W)`` runs them in W forked processes (SEAL
gains nothing from threads, but processes use every core).  The secret key
reaches the workers only as a forked copy of this process's memory.

Run: python examples/throughput_workers.py [--schemes bfv ckks] [--batches 2] [--workers 2] [--epochs 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import secquant
from secquant import models
from secquant.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", nargs="+", default=["bfv", "ckks"], choices=["bfv", "ckks"])
    parser.add_argument("--batches", type=int, default=2, help="full batches to run (the test inputs repeated)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()

    ds = load_dataset("digits")
    model = models.train(models.digits_mlp(), ds.x_train, ds.y_train, epochs=args.epochs)
    qm = secquant.quantize_model(model, ds.x_train, bits=8)
    for scheme in args.schemes:
        em = secquant.compile(qm, scheme, mode="throughput")
        batch = em.backend.batch_size()
        total = args.batches * batch
        x = np.concatenate([ds.x_test] * -(-total // len(ds.x_test)))[:total]
        xq = qm.quantize_input(x)
        em.forward_int(xq[:1])  # keys are made once, outside the timings
        ref = np.asarray(qm.forward_int(xq), dtype=object)
        rates = {}
        for workers in (1, args.workers):
            t0 = time.perf_counter()
            out = em.forward_int(xq, workers=workers)
            rates[workers] = total / (time.perf_counter() - t0)
            if scheme == "bfv":
                ok = bool(np.array_equal(np.asarray(out, dtype=object), ref))
                check = f"bit-exact: {ok}"
            else:
                err = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - ref.astype(np.float64))))
                check = f"within bound: {err <= em.parameters()['max_abs_error_int']}"
            print(f"{scheme}: {args.batches} batches of {batch}, workers={workers}: "
                  f"{rates[workers]:.0f} inputs/s, {check}")
        print(f"{scheme}: {args.workers} workers / 1 process = {rates[args.workers] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
