"""Paillier secure aggregation with distributed discrete Gaussian noise, over a real aggregator.

A key-holder makes a Paillier key and opens a round at an aggregator running
on 127.0.0.1; clients clip and quantize their update vectors to Z_2^b, add one
share of discrete Gaussian noise, pack, encrypt and submit; the aggregator
multiplies ciphertexts without any key; the key-holder decrypts only the sum.
With ``--dropouts k``, k clients never submit: the survivors top the noise up
(``--policy top_up``) or the key-holder refuses to release (``--policy refuse``).

    python examples/secure_aggregation.py --clients 10 --dim 1000
    python examples/secure_aggregation.py --clients 10 --dim 100 --dropouts 3 --policy refuse
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time

import httpx
import numpy as np

from secquant.protocol.aggregation import AggregationClient, KeyHolder, RoundConfig
from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
from secquant.protocol.errors import ReleaseRefusedError
from secquant.protocol.runner import ServerThread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--dropouts", type=int, default=0, help="clients that never submit")
    parser.add_argument("--policy", default="top_up", choices=["top_up", "refuse"])
    parser.add_argument("--sigma", type=float, default=320.0, help="per-client noise σ, integer steps")
    parser.add_argument("--granularity", type=float, default=1e-2, help="γ: update units per integer step")
    parser.add_argument("--key-bits", type=int, default=3072)
    args = parser.parse_args()

    token = secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    kh = KeyHolder(args.key_bits)
    keygen = time.perf_counter() - t0
    config = RoundConfig(n_clients=args.clients, dim=args.dim, clip_norm=1.0, granularity=args.granularity,
                         sigma=args.sigma,
                         modulus_bits=32, dropout_policy=args.policy, key_bits=kh.key_bits)
    print(f"round: {args.clients} clients, dim {args.dim}, σ {args.sigma} per client, "
          f"ε = {config.epsilon():.3f} at δ = {config.delta:g}, {config.ciphertexts_per_message()} "
          f"ciphertexts of {config.key_bits}-bit Paillier per client (keygen {keygen:.2f} s)")
    rng = np.random.default_rng(0)
    updates = rng.normal(scale=0.02, size=(args.clients, args.dim))
    app = create_aggregator_app(AggregatorConfig(token=token))
    with ServerThread(app) as server:
        rid = kh.open_round(server.url, token, config)
        live = args.clients - args.dropouts
        clients = [AggregationClient(server.url, token, f"client-{i:03d}") for i in range(live)]
        t0 = time.perf_counter()
        threads = [threading.Thread(target=c.submit, args=(rid, updates[i])) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submit = time.perf_counter() - t0
        enc = np.mean([c.timings["update_encrypt"] for c in clients])
        print(f"{live} clients submitted in {submit:.2f} s (mean client encrypt {enc:.3f} s, concurrent)")
        if args.dropouts:
            r = httpx.post(f"{server.url}/v1/rounds/{rid}/close", headers={"Authorization": f"Bearer {token}"})
            print(f"{args.dropouts} dropouts: round is {r.json()['state']}")
            if r.json()["state"] == "topup":
                shares = sum(c.top_up(rid) for c in clients)
                print(f"survivors added {shares} extra noise shares")
        try:
            release = kh.release(server.url, token, rid)
        except ReleaseRefusedError as exc:
            print(f"key-holder refused to release: {exc}")
            return
    true_sum = updates[:live].sum(axis=0)
    err = release.estimate - true_sum
    print(f"released sum of {len(release.contributors)} clients with {release.noise_shares} noise shares, "
          f"ε = {release.epsilon:.3f}")
    print("key-holder timings (s): " + ", ".join(f"{k} {v:.3f}" for k, v in release.timings.items()))
    print(f"error vs true sum: rms {np.sqrt(np.mean(err ** 2)):.4f}, expected noise std "
          f"{np.sqrt(release.noise_shares) * args.sigma * args.granularity:.4f}")


if __name__ == "__main__":
    main()
