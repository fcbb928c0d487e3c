"""The model zoo under every scheme: accuracy at each stage, latency, sizes.

For each zoo network (``secquant.models.ZOO``) and each scheme it prints one
row: model, scheme, mode, depth (CKKS levels / BFV multiplicative depth, as
``parameters()`` reports it), N; accuracy of the float ReLU network (the same
architecture with ReLU in place of its polynomials, trained alike), of the
polynomial network, of the integer model (``qm.predict``) and of the encrypted
run (on the first ``--limit`` test inputs); latency per image (latency mode:
median over the images) or images/s (throughput mode: one full slot batch,
amortized); public material MB, request and response KB per image.  A scheme
that refuses a model gets a row with the error.  Targets of issue 12 are
printed with their ratios at the end.

Run:  python bench/model_zoo.py --train 4000 --test 1000 --limit 3 --models lenet5 --schemes ckks
Writes bench/results/model_zoo.json (``--out`` names another file).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table, write_json

import secquant
from secquant.models import ZOO, ZooName, accuracy, train, zoo_model
from secquant.nn.layers import Poly, Square
from tests.conformance.zoo import TRAIN_SIZES, Quant, quantize, trained

COLUMNS = ["model", "scheme", "mode", "depth", "N", "acc_relu", "acc_poly", "acc_int", "acc_enc", "n_enc", "agree_enc",
           "s_per_image", "images_per_s", "pk_MB", "req_KB", "resp_KB", "note"]


def _relu_twin(name: ZooName) -> nn.Module:
    """The zoo network with ReLU modules in place of its Square/Poly modules (the form that has them)."""
    model = zoo_model(name, class_based=ZOO[name].sequential is None, seed=0)

    def swap(parent: nn.Module) -> None:
        for key, child in parent.named_children():
            if isinstance(child, (Poly, Square)):
                setattr(parent, key, nn.ReLU())
            else:
                swap(child)

    swap(model)
    return model


def _float_acc(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return accuracy(model(torch.as_tensor(x, dtype=torch.float32)), y)


def _measure(qm: Any, scheme: str, mode: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Compile, encrypt the inputs (one at a time in latency mode, one batch in throughput mode)."""
    kw: dict[str, Any] = {"interactive": True} if scheme == "paillier" and mode == "-" else {}
    if mode in ("latency", "throughput"):
        kw["mode"] = mode
    em = secquant.compile(qm, scheme, **kw)
    params = em.parameters()
    depth = params.get("depth", params.get("multiplicative_depth", params.get("rounds")))
    row: dict[str, Any] = {"depth": depth,
                           "N": params.get("poly_degree", params.get("key_bits"))}
    client = em.client()
    row["pk_MB"] = len(client.public_material()) / 1e6
    del client
    outs, secs, req, resp = [], [], [], []
    chunks = [x] if mode == "throughput" else [x[i:i + 1] for i in range(len(x))]
    for chunk in chunks:
        t0 = time.perf_counter()
        outs.append(np.asarray(em.forward_int(qm.quantize_input(chunk))))
        secs.append(time.perf_counter() - t0)
        req.append(em.last_timings.get("request_bytes", 0.0) / len(chunk))
        resp.append(em.last_timings.get("response_bytes", 0.0) / len(chunk))
    out = np.concatenate(outs)
    scores = qm.dequantize_output(out)
    ref = np.asarray(qm.forward_int(qm.quantize_input(x)))
    row.update(acc_enc=accuracy(scores, y), n_enc=len(x), agree_enc=float(np.mean(out.argmax(1) == ref.argmax(1))), req_KB=statistics.median(req) / 1e3,
               resp_KB=statistics.median(resp) / 1e3)
    if mode == "throughput":
        batch = em.backend.batch_size() or len(x)
        row["images_per_s"] = batch / secs[0]
    else:
        row["s_per_image"] = statistics.median(secs)
    del em
    gc.collect()
    return row


@contextlib.contextmanager
def _memory_cap(extra_gb: float) -> Any:
    """Let one row add at most ``extra_gb`` of address space: a backend that needs more raises MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = used + int(extra_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        gc.collect()


def _model_rows(name: ZooName, args: argparse.Namespace) -> list[dict[str, Any]]:
    n_train = args.train or TRAIN_SIZES[name][0]
    t = trained(name, n_train=n_train, epochs=args.epochs)
    entry = ZOO[name]
    x_te, y_te = t.x_test[:args.test], t.y_test[:args.test]
    relu = train(_relu_twin(name), t.x_train, _labels(entry, n_train), epochs=args.epochs or TRAIN_SIZES[name][1],
                 lr=TRAIN_SIZES[name][2])
    quant = Quant.REQUANT if entry.quant.requantize is not None else Quant.EXACT
    qm = quantize(t, quant)
    base = {"model": f"{name.value} ({quant.value})", "acc_relu": _float_acc(relu, x_te, y_te),
            "acc_poly": _float_acc(t.model, x_te, y_te), "acc_int": accuracy(qm.predict(x_te), y_te)}
    rows = []
    for spec in args.schemes:
        scheme, _, mode = spec.partition("-")
        mode = mode or ("-" if scheme in ("paillier", "plain") else "latency")
        if mode == "throughput" and name.value not in args.throughput_models:
            continue
        row = {**base, "scheme": scheme, "mode": mode}
        try:
            with _memory_cap(args.memory_gb):
                row.update(_measure(qm, scheme, mode, x_te[:args.limit], y_te[:args.limit]))
        except Exception as ex:  # a bench reports every failure as a row
            row["note"] = f"{type(ex).__name__}: {str(ex)[:90]}"
        print(table([row], COLUMNS).splitlines()[1], flush=True)
        rows.append(row)
    return rows


def _labels(entry: Any, n: int) -> np.ndarray:
    from secquant.data import load_dataset

    return load_dataset(entry.dataset).y_train[:n]


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["scheme"] != "ckks" or r.get("acc_enc") is None:
            continue
        # Encrypted accuracy = integer accuracy on the whole test set when every encrypted argmax agrees.
        est = r["acc_int"] if r.get("agree_enc") == 1.0 else r["acc_enc"]
        drop = 100 * (r["acc_relu"] - est)
        line = (f"{r['model']} ckks: encrypted accuracy {est:.3f} (integer accuracy, {r['n_enc']} encrypted images "
                f"agree {r.get('agree_enc')}) vs float ReLU {r['acc_relu']:.3f}: drop {drop:.1f} points "
                f"(target <= 1.5, ratio {drop / 1.5:.2f})")
        if r["model"].startswith("lenet5") and r.get("s_per_image"):
            line += f"; {r['s_per_image']:.1f} s/image (target <= 30, ratio {r['s_per_image'] / 30:.2f})"
        out.append(line)
    for r in rows:
        if r["model"].startswith("deep_mlp") and r["scheme"] == "ckks":
            fits = isinstance(r.get("N"), int) and r["N"] <= 32768
            out.append(f"deep_mlp ckks: N = {r.get('N')} (target <= 32768: {'met' if fits else 'not met'})")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=None, help="training examples (default: the conformance sizes)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the conformance sizes)")
    p.add_argument("--test", type=int, default=200, help="test examples for the plaintext accuracies")
    p.add_argument("--limit", type=int, default=3, help="test examples encrypted per row")
    p.add_argument("--models", nargs="+", default=[n.value for n in ZooName], choices=[n.value for n in ZooName])
    p.add_argument("--schemes", nargs="+", default=["ckks", "bfv", "paillier"],
                   help="ckks, bfv, paillier, plain; append -throughput for a full slot batch (ckks-throughput)")
    p.add_argument("--throughput-models", nargs="+", default=["logistic", "digits_mlp", "deep_mlp"],
                   help="models that get the -throughput schemes (a full slot batch is costly on the CNNs)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address space one row may add (GB)")
    p.add_argument("--out", default="model_zoo", help="results name: bench/results/<out>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("  ".join(COLUMNS))
    rows = [r for m in args.models for r in _model_rows(ZooName(m), args)]
    print("\n" + table(rows, COLUMNS))
    targets = _targets(rows)
    print("\n".join(targets))
    path = write_json(args.out, {"args": vars(args), "rows": rows, "targets": targets})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
