"""Encrypted inference with BFV: exact integer results on real digits, client and server split.

Run: python examples/encrypted_inference.py [--limit 200] [--epochs 40] [--bits 8] [--latency 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import secquant
from secquant import models
from secquant.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="encrypted test inputs (throughput mode)")
    parser.add_argument("--latency", type=int, default=2, help="inputs run one by one in latency mode (0: skip)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--bits", type=int, default=8)
    args = parser.parse_args()

    ds = load_dataset("digits")
    model = models.train(models.digits_mlp(), ds.x_train, ds.y_train, epochs=args.epochs)
    qm = secquant.quantize_model(model, ds.x_train, bits=args.bits)
    x, y = ds.x_test[: args.limit], ds.y_test[: args.limit]
    print(f"model needs a {qm.modulus_needed.bit_length()}-bit plaintext modulus, depth {qm.multiplicative_depth}")

    # 1. parameters come from the bounds; nothing is chosen by hand
    em = secquant.compile(qm, "bfv")  # throughput mode: one ciphertext per feature, inputs across slots
    p = em.parameters()
    print(json.dumps({k: p[k] for k in ("mode", "poly_degree", "coeff_modulus_bits", "plain_modulus_bits",
                                        "estimated_security_bits", "ciphertext_bytes_uploaded")}))
    print("simulation predicts success:", em.simulate(x[:8]).ok)

    # 2. client and server exchange bytes only; the server never sees a secret key
    client = em.client()
    server = em.server(client.public_material())
    xq = qm.quantize_input(x)
    result = client.decrypt(server.evaluate(client.encrypt(xq)))
    exact = bool(np.array_equal(result, qm.forward_int(xq)))
    acc = float(np.mean(qm.dequantize_output(result).argmax(1) == y))
    print(f"throughput: {len(x)} encrypted inputs, bit-exact vs qm.forward_int: {exact}, accuracy {acc:.4f}")

    # 3. latency mode: one input per ciphertext, rotations with Galois keys for exactly the steps used
    if args.latency:
        lat = secquant.compile(qm, "bfv", mode="latency")
        for i in range(args.latency):
            scores = lat.predict(x[i:i + 1])
            t = lat.last_timings
            print(f"latency input {i}: predicted {int(scores.argmax())} (label {int(y[i])}), "
                  f"encrypt {t['encrypt']:.3f}s evaluate {t['evaluate']:.3f}s decrypt {t['decrypt']:.3f}s")

    # 4. a modulus that cannot hold the bound is refused before any key exists
    try:
        secquant.compile(qm, "bfv", plain_modulus=257)
    except secquant.ModulusOverflowError as exc:
        print("plain_modulus=257 refused:", str(exc).split(";")[0])


if __name__ == "__main__":
    main()
