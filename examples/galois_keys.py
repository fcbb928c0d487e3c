"""Galois keys against key switches: one CKKS convolution under one-key-per-step and power-of-two keys.

A stride-1 convolution on MNIST (LeNet-5's first layer) is compiled in CKKS
latency mode twice: with one Galois key per rotation step (``galois_keys="steps"``)
and with keys for powers of two only (``"powers_of_two"``; SEAL composes every
other step, one key switch per term of its non-adjacent form).  For each it
prints the keys, their measured bytes, rotations and key switches per image,
the seconds per image, and the largest error against the stated bound.

    python examples/galois_keys.py --limit 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square


def train_conv(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    """conv 5x5 (4 channels, padding 2) -> Square -> avgpool 2 -> linear 10, full-batch Adam, fixed seed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), Square(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def run(qm: secquant.QuantizedModel, policy: str, x: np.ndarray) -> dict[str, float]:
    """Compile under ``policy``, classify ``x`` one image at a time; sizes, costs and the error against the bound."""
    em = secquant.compile(qm, "ckks", mode="latency", client_gather=False, galois_keys=policy)
    params = em.parameters()
    client = em.client()
    material = client.public_material()
    server = em.server(material)
    xq = qm.quantize_input(x)
    outs, secs = [], []
    for row in xq:
        t0 = time.perf_counter()
        outs.append(client.decrypt(server.evaluate(client.encrypt(row[None]))))
        secs.append(time.perf_counter() - t0)
    err = float(np.max(np.abs(np.concatenate(outs).astype(np.float64) - np.asarray(qm.forward_int(xq), np.float64))))
    return {"N": params["poly_degree"], "keys": len(params["galois_steps"]), "public_MB": len(material) / 1e6,
            "rotations": params["rotations_per_input"], "key_switches": params["key_switches_per_input"],
            "s_per_image": float(np.median(secs)), "max_error": err, "bound": params["max_abs_error_int"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4, help="test images to classify per policy (default 4)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be >= 1")
    torch.set_num_threads(1)
    data = load_dataset("mnist")
    x_train, x_test = data.images()
    qm = secquant.quantize_model(train_conv(x_train[:1000], data.y_train[:1000], args.epochs), x_train[:256])
    print(f"{'galois_keys':>14} {'N':>6} {'keys':>5} {'public MB':>10} {'rotations':>10} {'key switches':>13} "
          f"{'s/image':>8} {'max error':>10} {'bound':>10}")
    ok = True
    for policy in ("steps", "powers_of_two"):
        r = run(qm, policy, x_test[: args.limit])
        ok &= r["max_error"] <= r["bound"]
        print(f"{policy:>14} {r['N']:>6} {r['keys']:>5} {r['public_MB']:>10.1f} {r['rotations']:>10} "
              f"{r['key_switches']:>13} {r['s_per_image']:>8.2f} {r['max_error']:>10.4g} {r['bound']:>10.4g}")
    print(f"every error within its stated bound: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
