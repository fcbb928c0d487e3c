"""Encrypted logistic regression with Paillier: the client's features stay encrypted.

Trains a logistic model on real data (breast cancer or digits), quantizes it to
integers, and classifies test inputs through the Paillier client/server roles:
the client encrypts, the server evaluates with the public key only, the client
decrypts.  Checks that every encrypted result equals the integer reference.

    python examples/paillier_logistic.py --dataset breast_cancer --n 20
    python examples/paillier_logistic.py --dataset digits --n 5 --key-bits 2048
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset


def train_logistic(x: np.ndarray, y: np.ndarray, classes: int, epochs: int = 200) -> nn.Module:
    """A linear layer trained with cross-entropy (softmax regression)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(x.shape[1], classes))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.tensor(x.reshape(len(x), -1)), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["breast_cancer", "digits"], default="breast_cancer")
    parser.add_argument("--n", type=int, default=20, help="test inputs to classify encrypted (default 20)")
    parser.add_argument("--key-bits", type=int, default=3072, help="Paillier modulus bits (default 3072)")
    parser.add_argument("--bits", type=int, default=8, help="weight and input bits (default 8)")
    args = parser.parse_args(argv)

    data = load_dataset(args.dataset)
    model = train_logistic(data.x_train, data.y_train, data.n_classes)
    qm = secquant.quantize_model(model, data.x_train, bits=args.bits)
    em = secquant.compile(qm, "paillier", key_bits=args.key_bits)

    t0 = time.perf_counter()
    client = em.client()  # generates the keys; holds the private key
    server = em.server(client.public_material())  # public key only
    keygen = time.perf_counter() - t0

    x = data.x_test[: args.n]
    xq = qm.quantize_input(x)
    t1 = time.perf_counter()
    request = client.encrypt(xq)
    t2 = time.perf_counter()
    response = server.evaluate(request)
    t3 = time.perf_counter()
    yq = client.decrypt(response)
    t4 = time.perf_counter()

    exact = bool(np.array_equal(yq, qm.forward_int(xq)))
    pred = qm.dequantize_output(yq).argmax(axis=1)
    params = em.parameters()
    print(f"dataset {args.dataset}: {len(x)} inputs, {qm.input_shape[0]} features, {data.n_classes} classes")
    print(f"key {params['key_bits']} bits (~{params['security_bits']}-bit security), randomness "
          f"{params['randomness']['method']}, slots per ciphertext "
          f"{params['round_details'][0]['packing']['slots_per_plaintext']}")
    print(f"keys+tables {keygen:.2f}s  encrypt {t2 - t1:.3f}s  evaluate {t3 - t2:.3f}s  decrypt {t4 - t3:.3f}s")
    print(f"request {len(request) / 1024:.1f} KiB  response {len(response) / 1024:.1f} KiB")
    print(f"accuracy {np.mean(pred == data.y_test[: len(x)]):.3f}  bit-exact to forward_int: {exact}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
