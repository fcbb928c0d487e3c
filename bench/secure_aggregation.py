"""Timings of Paillier secure aggregation: client encryption, aggregator sum, key-holder decryption.

For each dimension d, it runs one real round over the aggregator on 127.0.0.1
with ``--clients`` clients, who submit one after another so their timings do
not compete. Real keys, 3072-bit by default. It reports:

* per client: the encode + noise + pack + encrypt time, and the bytes sent;
* the aggregator's time for the whole collection phase (network + homomorphic sum);
* the key-holder's close + fetch + decrypt time;
* the release's error against the true sum, and ε.

It checks the release to the bit against the revealed noise (test-only mode).
Prints a table and writes ``bench/results/secure_aggregation.json``.

    python bench/secure_aggregation.py --clients 10 --dims 1000,10000 --key-bits 3072
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
from _common import table, write_json  # noqa: E402


def one_round(kh: Any, url: str, token: str, clients: int, dim: int, sigma: float) -> dict[str, Any]:
    """A full round; returns its timings and checks."""
    from secquant.protocol.aggregation import AggregationClient, RoundConfig

    cfg = RoundConfig(n_clients=clients, dim=dim, clip_norm=1.0, granularity=1e-2, sigma=sigma, modulus_bits=32,
                      key_bits=kh.key_bits)
    rid = kh.open_round(url, token, cfg)
    updates = np.random.default_rng(0).normal(scale=0.02, size=(clients, dim))
    parties = [AggregationClient(url, token, f"c{i}", rng=np.random.default_rng(i), reveal_noise_for_testing=True)
               for i in range(clients)]
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
        "dim": dim, "clients": clients, "key_bits": kh.key_bits,
        "ciphertexts_per_client": cfg.ciphertexts_per_message(),
        "bytes_per_client": cfg.ciphertexts_per_message() * width, "client_encrypt_s": float(enc.mean()),
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
    args = parser.parse_args(argv)

    from secquant.protocol.aggregation import KeyHolder
    from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
    from secquant.protocol.runner import ServerThread

    token = secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    kh = KeyHolder(args.key_bits)
    keygen = time.perf_counter() - t0
    rows = []
    with ServerThread(create_aggregator_app(AggregatorConfig(token=token, max_request_bytes=256 << 20))) as server:
        for dim in [int(d) for d in args.dims.split(",")]:
            rows.append(one_round(kh, server.url, token, args.clients, dim, args.sigma))
    print(f"key generation ({args.key_bits} bits): {keygen:.2f} s")
    print(table(rows, ["dim", "clients", "key_bits", "ciphertexts_per_client", "bytes_per_client", "client_encrypt_s",
                       "collect_s", "kh_close_fetch_s", "kh_decrypt_s", "bit_exact", "epsilon", "rms_error"]))
    path = write_json("secure_aggregation", {"config": vars(args), "keygen_s": keygen, "results": rows})
    print(f"wrote {path}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
