"""The baseline: networks written directly against TenSEAL, the way its MNIST tutorial does.

TenSEAL's tutorial ("Encrypted Convolution on MNIST") evaluates
conv(4 kernels, 7x7, stride 3) -> square -> fc 256->64 -> square -> fc 64->10
with ``ts.im2col_encoding``, ``conv2d_im2col``, ``pack_vectors``, ``square_``
and ``mm`` under N=8192, moduli [31, 26, 26, 26, 26, 26, 26, 31] and scale
2**26, with TenSEAL's default (power-of-two) Galois keys.  This module runs
exactly that on the float weights of a given torch model, plus the digits MLP
64->32->Square->10 written the same way (``ckks_vector``, ``mm``, ``square_``).

``bench/encrypted_inference.py`` imports :func:`run_tutorial_mnist` and
:func:`run_digits_mlp` to measure secquant side by side with the same trained
weights.  Standalone, ``python bench/tenseal_baseline.py [--limit N]`` trains
the two networks, prints a table and writes ``bench/results/tenseal_baseline.json``.

Overflow: the tutorial's output ciphertext is left with q0 alone (31 bits), so
its plaintext coefficients must stay below q0/2 = 2**30, i.e. 16 times the
scale 2**26.  Coefficients past that wrap by q0/scale = 32, silently; whether a
given image does depends on all its slots, so the bench *measures* it:
``rows_garbled`` counts outputs off the float logits by more than 10% of the
row's largest |logit| (plus one), and ``systematic_scale_error`` is the median
ratio encrypted/float - 1 (TenSEAL resets the scale to 2**26 after each
rescale while the true scale is s²/q, with primes 0.1-1% below 2**26).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["TUTORIAL_PARAMS", "run_digits_mlp", "run_tutorial_mnist", "tutorial_context"]

#: TenSEAL's MNIST tutorial parameters.
TUTORIAL_PARAMS: dict[str, Any] = {
    "poly_modulus_degree": 8192,
    "coeff_mod_bit_sizes": [31, 26, 26, 26, 26, 26, 26, 31],
    "global_scale_bits": 26,
}


def tutorial_context() -> Any:
    """A TenSEAL CKKS context with the tutorial's parameters and default Galois keys."""
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=TUTORIAL_PARAMS["poly_modulus_degree"],
                     coeff_mod_bit_sizes=TUTORIAL_PARAMS["coeff_mod_bit_sizes"])
    ctx.global_scale = 2 ** TUTORIAL_PARAMS["global_scale_bits"]
    ctx.generate_galois_keys()
    return ctx


def _layers(model: Any) -> tuple[list[Any], list[Any]]:
    from torch import nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return convs, linears


def _float_outputs(model: Any, inputs: NDArray[np.float32]) -> NDArray[np.float64]:
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(inputs, dtype=np.float32))).double().numpy()


def _summary(name: str, timings: dict[str, list[float]], outputs: NDArray[np.float64],
             plain: NDArray[np.float64], labels: NDArray[np.int64] | None, sizes: dict[str, int]) -> dict[str, Any]:
    err = np.abs(outputs - plain)
    big = np.abs(plain) > 1.0
    ratio = np.median(outputs[big] / plain[big]) - 1.0 if np.any(big) else 0.0
    result: dict[str, Any] = {
        "network": name,
        "params": dict(TUTORIAL_PARAMS),
        "n": int(outputs.shape[0]),
        "timings_s": {k: {"median": statistics.median(v), "mean": statistics.fmean(v), "total": sum(v)}
                      for k, v in timings.items() if v},
        "sizes_bytes": sizes,
        "outputs": outputs,
        "plain_outputs": plain,
        "agreement_with_float_argmax": float(np.mean(outputs.argmax(1) == plain.argmax(1))),
        "max_abs_error": float(err.max()) if err.size else 0.0,
        "rows_garbled": int(np.sum(err.max(axis=1) > 0.1 * np.abs(plain).max(axis=1) + 1.0)),
        "rows_off_by_more_than_1": int(np.sum(err.max(axis=1) > 1.0)),
        "systematic_scale_error": float(ratio),
    }
    if labels is not None:
        y = np.asarray(labels)[: outputs.shape[0]]
        result["accuracy_encrypted"] = float(np.mean(outputs.argmax(1) == y))
        result["accuracy_plain_float"] = float(np.mean(plain.argmax(1) == y))
    return result


def run_tutorial_mnist(model: Any, images: NDArray[np.float32], labels: NDArray[np.int64] | None = None,
                       *, context: Any | None = None) -> dict[str, Any]:
    """TenSEAL's tutorial network on MNIST images, exactly as the tutorial writes it.

    Args:
        model: A trained torch model with one Conv2d (1 -> C, square kernel,
            no padding) and two Linear layers, Square after the conv and after fc1.
        images: (n, 1, 28, 28) or (n, 784) floats, the inputs the model was trained on.
        labels: Optional labels for accuracy.
        context: Reuse a tutorial context (its key generation is not timed).

    Returns:
        dict with ``timings_s`` (encrypt, evaluate, decrypt per image),
        ``outputs`` (n, 10) decrypted logits, ``plain_outputs`` (the float
        model), accuracy, overflow counts and ``sizes_bytes``.
    """
    import tenseal as ts

    convs, linears = _layers(model)
    if len(convs) != 1 or len(linears) != 2:
        raise ValueError("the tutorial network has one Conv2d and two Linear layers")
    conv, fc1, fc2 = convs[0], linears[0], linears[1]
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    conv_w = conv.weight.data.view(conv.out_channels, conv.kernel_size[0], conv.kernel_size[1]).tolist()
    conv_b = conv.bias.data.tolist()
    fc1_w, fc1_b = fc1.weight.T.data.tolist(), fc1.bias.data.tolist()
    fc2_w, fc2_b = fc2.weight.T.data.tolist(), fc2.bias.data.tolist()
    imgs = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28)
    t0 = time.perf_counter()
    ctx = context if context is not None else tutorial_context()
    keygen = time.perf_counter() - t0
    timings: dict[str, list[float]] = {"encrypt": [], "evaluate": [], "decrypt": []}
    outputs = []
    sizes: dict[str, int] = {}
    for idx, img in enumerate(imgs):
        t0 = time.perf_counter()
        enc_x, windows_nb = ts.im2col_encoding(ctx, img.tolist(), kernel, kernel, stride)
        t1 = time.perf_counter()
        channels = []
        for k, b in zip(conv_w, conv_b):
            channels.append(enc_x.conv2d_im2col(k, windows_nb) + b)
        enc = ts.CKKSVector.pack_vectors(channels)
        enc.square_()
        enc = enc.mm(fc1_w) + fc1_b
        enc.square_()
        enc = enc.mm(fc2_w) + fc2_b
        t2 = time.perf_counter()
        outputs.append(enc.decrypt())
        t3 = time.perf_counter()
        timings["encrypt"].append(t1 - t0)
        timings["evaluate"].append(t2 - t1)
        timings["decrypt"].append(t3 - t2)
        if idx == 0:
            sizes = {"input_ciphertext": len(enc_x.serialize()), "output_ciphertext": len(enc.serialize())}
    sizes["public_context_with_galois_keys"] = len(_public_bytes(ctx))
    result = _summary("tenseal_tutorial_mnist", timings, np.asarray(outputs, dtype=np.float64),
                      _float_outputs(model, imgs.reshape(-1, 1, 28, 28)), labels, sizes)
    result["keygen_s"] = keygen
    return result


def run_digits_mlp(model: Any, inputs: NDArray[np.float32], labels: NDArray[np.int64] | None = None,
                   *, context: Any | None = None) -> dict[str, Any]:
    """The digits MLP 64 -> h -> Square -> 10 written the tutorial's way (``ckks_vector``, ``mm``, ``square_``).

    Args:
        model: Trained torch model with two Linear layers and a Square between them.
        inputs: (n, 64) floats.
        labels: Optional labels for accuracy.
        context: Reuse a tutorial context.

    Returns:
        The same dict as :func:`run_tutorial_mnist`.
    """
    import tenseal as ts

    _, linears = _layers(model)
    if len(linears) != 2:
        raise ValueError("the digits MLP has two Linear layers")
    w1, b1 = linears[0].weight.T.data.tolist(), linears[0].bias.data.tolist()
    w2, b2 = linears[1].weight.T.data.tolist(), linears[1].bias.data.tolist()
    x = np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1)
    t0 = time.perf_counter()
    ctx = context if context is not None else tutorial_context()
    keygen = time.perf_counter() - t0
    timings: dict[str, list[float]] = {"encrypt": [], "evaluate": [], "decrypt": []}
    outputs = []
    sizes: dict[str, int] = {}
    for idx, row in enumerate(x):
        t0 = time.perf_counter()
        enc_x = ts.ckks_vector(ctx, row.tolist())
        t1 = time.perf_counter()
        enc = enc_x.mm(w1) + b1
        enc.square_()
        enc = enc.mm(w2) + b2
        t2 = time.perf_counter()
        outputs.append(enc.decrypt())
        t3 = time.perf_counter()
        timings["encrypt"].append(t1 - t0)
        timings["evaluate"].append(t2 - t1)
        timings["decrypt"].append(t3 - t2)
        if idx == 0:
            sizes = {"input_ciphertext": len(enc_x.serialize()), "output_ciphertext": len(enc.serialize())}
    sizes["public_context_with_galois_keys"] = len(_public_bytes(ctx))
    result = _summary("tenseal_digits_mlp", timings, np.asarray(outputs, dtype=np.float64),
                      _float_outputs(model, x), labels, sizes)
    result["keygen_s"] = keygen
    return result


def _public_bytes(ctx: Any) -> bytes:
    public = ctx.copy()
    public.make_context_public()
    return public.serialize(save_galois_keys=True, save_relin_keys=True)


def _train_models(seed: int = 0) -> dict[str, Any]:
    """The two networks trained on secquant's data (the same recipe as bench/encrypted_inference.py)."""
    import torch
    from torch import nn

    from secquant.data import load_dataset
    from secquant.nn import Square
    from secquant.tuning.train import TrainConfig, train

    torch.set_num_threads(1)
    mnist, digits = load_dataset("mnist"), load_dataset("digits")
    xtr, xte = mnist.images()
    torch.manual_seed(seed)
    tut = nn.Sequential(nn.Conv2d(1, 4, 7, stride=3), Square(), nn.Flatten(), nn.Linear(256, 64), Square(),
                        nn.Linear(64, 10))
    train(tut, list(tut.parameters()), xtr, mnist.y_train, TrainConfig(epochs=10, lr=1e-3, seed=seed), modules=(tut,))
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    train(mlp, list(mlp.parameters()), digits.x_train, digits.y_train, TrainConfig(epochs=30, lr=3e-3, seed=seed),
          modules=(mlp,))
    return {"mnist": (tut.eval(), xte, mnist.y_test), "digits": (mlp.eval(), digits.x_test, digits.y_test)}


def main(argv: list[str] | None = None) -> int:
    """Run both baselines on ``--limit`` test inputs, print a table, write JSON."""
    from bench._common import table, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20, help="test inputs per network (default 20)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be >= 1")
    models = _train_models()
    ctx = tutorial_context()
    runs = []
    model, x, y = models["mnist"]
    runs.append(run_tutorial_mnist(model, x[: args.limit], y, context=ctx))
    model, x, y = models["digits"]
    runs.append(run_digits_mlp(model, x[: args.limit], y, context=ctx))
    rows = [{"network": r["network"], "n": r["n"], "encrypt_ms": 1e3 * r["timings_s"]["encrypt"]["median"],
             "evaluate_ms": 1e3 * r["timings_s"]["evaluate"]["median"],
             "decrypt_ms": 1e3 * r["timings_s"]["decrypt"]["median"],
             "acc_enc": r.get("accuracy_encrypted"), "acc_plain": r.get("accuracy_plain_float"),
             "agree": r["agreement_with_float_argmax"], "garbled": r["rows_garbled"],
             "scale_err": r["systematic_scale_error"],
             "in_KB": r["sizes_bytes"]["input_ciphertext"] / 1e3,
             "ctx_MB": r["sizes_bytes"]["public_context_with_galois_keys"] / 1e6} for r in runs]
    print(table(rows, list(rows[0])))
    payload = {"runs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()
                         if k not in ("outputs", "plain_outputs")} for r in runs]}
    print("wrote", write_json("tenseal_baseline", payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
