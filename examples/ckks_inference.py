"""Encrypted inference with CKKS: a digits MLP evaluated on ciphertexts, client and server split.

The client quantizes and encrypts, the server evaluates with public keys only,
the client decrypts to integers within the error bound secquant states.

    python examples/ckks_inference.py --limit 20 --mode latency
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square


def train_mlp(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    """Digits MLP 64 -> 32 -> Square -> 10, full-batch Adam, fixed seed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="test images to classify (default 100)")
    parser.add_argument("--mode", choices=["latency", "throughput"], default="latency")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be >= 1")
    torch.set_num_threads(1)

    data = load_dataset("digits")
    net = train_mlp(data.x_train, data.y_train, args.epochs)
    qm = secquant.quantize_model(net, data.x_train[:512])
    em = secquant.compile(qm, "ckks", mode=args.mode)
    params = em.parameters()
    print("CKKS parameters:", json.dumps({k: params[k] for k in (
        "poly_degree", "coeff_modulus_bits", "scale_bits", "depth", "security_bits", "max_abs_error_int",
        "relative_error_bound", "galois_steps")}))

    client = em.client()                               # holds the secret key
    server = em.server(client.public_material())       # public + evaluation keys only
    x, y = data.x_test[: args.limit], data.y_test[: args.limit]
    xq = qm.quantize_input(x)
    t0 = time.perf_counter()
    request = client.encrypt(xq)
    t1 = time.perf_counter()
    response = server.evaluate(request)
    t2 = time.perf_counter()
    out = client.decrypt(response)
    t3 = time.perf_counter()

    ref = qm.forward_int(xq)
    err = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - np.asarray(ref, dtype=np.float64))))
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    acc = float(np.mean(out.argmax(1) == y))
    print(f"{len(x)} images ({args.mode}): encrypt {t1 - t0:.2f}s, evaluate {t2 - t1:.2f}s, decrypt {t3 - t2:.2f}s; "
          f"request {len(request) / 1e6:.1f} MB, response {len(response) / 1e6:.1f} MB")
    print(f"max |error| {err:.4g} <= stated bound {params['max_abs_error_int']}: {err <= params['max_abs_error_int']}")
    print(f"argmax agrees with the integer model on {agree:.1%}; accuracy {acc:.1%}")
    return 0 if err <= params["max_abs_error_int"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
