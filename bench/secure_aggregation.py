"""Timings of Paillier secure aggregation: client encryption, aggregator sum, key-holder decryption.

For each dimension d, it runs one real round over the aggregator on 127.0.0.1
with ``--clients`` parties (each with its own Ed25519 key, registered with the
key-holder), who submit one after another so their timings do not compete.
Real keys, 3072-bit by default. It reports:

* per client: the verify + encode + noise + pack + encrypt + sign time, and the bytes sent (data
  ciphertexts plus the encrypted tag seed)
  (``--randomness own``, the default: ``r^n`` from the client's own randomness; ``djn``: ``hs^a``);
* the aggregator's time for the whole collection phase (network + homomorphic sum);
* the key-holder's close + fetch + decrypt time;
* the release's error against the true sum, and ε.

It checks the release to the bit against the revealed noise (test-only mode).
Prints a table and writes ``bench/results/secure_aggregation.json``.

    python bench/secure_aggregation.py --clients 10 --dims 1000,10000 --key-bits 3072 [--randomness djn]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_json


def one_round(kh: Any, keys: dict[str, Any], url: str, token: str, dim: int, sigma: float,
              randomness: str) -> dict[str, Any]:
    """A full round; returns its timings and checks."""
    from secquant.protocol.aggregation import AggregationClient, ClientPolicy, RoundConfig

    clients = len(keys)
    cfg = RoundConfig(n_clients=clients, dim=dim, clip_norm=1.0, granularity=1e-2, sigma=sigma, modulus_bits=32,
                      key_bits=kh.key_bits)
    rid = kh.open_round(url, token, cfg)
    updates = np.random.default_rng(0).normal(scale=0.02, size=(clients, dim))
    policy = ClientPolicy(min_key_bits=min(kh.key_bits, 3072), randomness=randomness)
    parties = [AggregationClient(url, token, pid, signing_key=key, keyholder_key=kh.verify_key, policy=policy,
                                 reveal_noise_for_testing=True) for pid, key in keys.items()]
    t0 = time.perf_counter()
    for i, c in enumerate(parties):
        c.submit(rid, updates[i])
    collect = time.perf_counter() - t0
    release = kh.release(url, token, rid)
    total = sum(c.revealed["update"] + c.revealed["noise"] for c in parties)
    exact = bool(np.array_equal(release.residues, np.mod(total, cfg.modulus)))
    enc = np.array([c.timings["update_encrypt"] for c in parties])
    width = (kh.public_key.nsquare.bit_length() + 7) // 8
    return {
        "dim": dim, "clients": clients, "key_bits": kh.key_bits, "randomness": randomness,
        "ciphertexts_per_client": cfg.ciphertexts_per_message(),
        "bytes_per_client": (cfg.ciphertexts_per_message() + 1) * width, "client_encrypt_s": float(enc.mean()),
        "client_encrypt_max_s": float(enc.max()), "collect_s": collect,
        "kh_close_fetch_s": release.timings["close"] + release.timings["fetch"],
        "kh_decrypt_s": release.timings["decrypt"], "bit_exact": exact, "epsilon": release.epsilon,
        "rms_error": float(np.sqrt(np.mean((release.estimate - updates.sum(0)) ** 2))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--dims", default="1000,10000")
    parser.add_argument("--key-bits", type=int, default=3072)
    parser.add_argument("--sigma", type=float, default=320.0)
    parser.add_argument("--randomness", default="own", choices=["own", "djn"])
    args = parser.parse_args(argv)

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from secquant.protocol.aggregation import KeyHolder, PartyList
    from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
    from secquant.protocol.runner import ServerThread

    token = secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    keys = {f"c{i}": ed25519.Ed25519PrivateKey.generate() for i in range(args.clients)}
    kh_key = ed25519.Ed25519PrivateKey.generate()
    kh = KeyHolder(kh_key, PartyList.from_public_keys({p: k.public_key() for p, k in keys.items()}), args.key_bits)
    keygen = time.perf_counter() - t0
    rows = []
    config = AggregatorConfig(keyholder_key=kh.verify_key, token=token, max_request_bytes=256 << 20)
    with ServerThread(create_aggregator_app(config)) as server:
        for dim in [int(d) for d in args.dims.split(",")]:
            rows.append(one_round(kh, keys, server.url, token, dim, args.sigma, args.randomness))
    print(f"key generation ({args.key_bits} bits): {keygen:.2f} s")
    print(table(rows, ["dim", "clients", "key_bits", "randomness", "ciphertexts_per_client", "bytes_per_client", "client_encrypt_s",
                       "collect_s", "kh_close_fetch_s", "kh_decrypt_s", "bit_exact", "epsilon", "rms_error"]))
    path = write_json("secure_aggregation", {"config": vars(args), "keygen_s": keygen, "results": rows})
    print(f"wrote {path}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
