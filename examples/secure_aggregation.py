"""Paillier secure aggregation with distributed discrete Gaussian noise, every party authenticated.

A key-holder makes a Paillier key and an Ed25519 signing key, registers one
Ed25519 key per client in a party list, and opens a signed round at an
aggregator running on 127.0.0.1.  Each client verifies the round against the
key-holder's public key (pinned) and its own floors, clips and quantizes its
update to Z_2^b, adds one share of discrete Gaussian noise (CSPRNG-keyed),
encrypts and signs it; the aggregator checks the signature, accepts one
submission per party and multiplies ciphertexts without any key; the
key-holder verifies every signature again and decrypts only the sum.
With ``--dropouts k``, k clients never submit: the survivors top the noise up
(``--policy top_up``) or the key-holder refuses to release (``--policy refuse``).

    python examples/secure_aggregation.py --clients 10 --dim 1000
    python examples/secure_aggregation.py --clients 10 --dim 100 --dropouts 3 --policy refuse
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from secquant.protocol.aggregation import AggregationClient, ClientPolicy, KeyHolder, PartyList, RoundConfig
from secquant.protocol.aggregation.app import AggregatorConfig, create_aggregator_app
from secquant.protocol.errors import ReleaseRefusedError, RemoteError
from secquant.protocol.runner import ServerThread
from secquant.signing import generate_signing_keys


def make_keys(folder: Path, clients: int) -> tuple[Path, Path, dict[str, Path], PartyList]:
    """What ``secquant keys new`` does on each machine: the key-holder's and every party's Ed25519 pair."""
    kh_key, kh_pub = generate_signing_keys(folder, "keyholder")
    party_keys, party_pubs = {}, {}
    for i in range(clients):
        pid = f"client-{i:03d}"
        party_keys[pid], party_pubs[pid] = generate_signing_keys(folder, pid)
    parties = PartyList.from_public_keys(party_pubs)
    parties.write(folder / "parties.json")  # the key-holder's registry of public keys
    return kh_key, kh_pub, party_keys, parties


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
    with tempfile.TemporaryDirectory(prefix="secquant-agg-") as tmp:  # private keys are deleted at the end
        run(args, Path(tmp))


def run(args: argparse.Namespace, folder: Path) -> None:
    """Keys, a round on a local aggregator, the release."""
    token = secrets.token_urlsafe(32)
    kh_key, kh_pub, party_keys, parties = make_keys(folder, args.clients)
    t0 = time.perf_counter()
    kh = KeyHolder(kh_key, folder / "parties.json", args.key_bits)
    keygen = time.perf_counter() - t0
    live = args.clients - args.dropouts
    # top_up lets survivors' extra shares count once `live` distinct parties are in
    config = RoundConfig(n_clients=args.clients, dim=args.dim, clip_norm=1.0, granularity=args.granularity,
                         sigma=args.sigma, modulus_bits=32, dropout_policy=args.policy, key_bits=kh.key_bits,
                         min_parties=max(1, live) if args.policy == "top_up" else None)
    print(f"round: {args.clients} registered parties, dim {args.dim}, σ {args.sigma} per client, "
          f"ε = {config.epsilon():.3f} at δ = {config.delta:g}, {config.ciphertexts_per_message()} "
          f"ciphertexts of {config.key_bits}-bit Paillier per client (keygen {keygen:.2f} s)")
    updates = np.random.default_rng(0).normal(scale=0.02, size=(args.clients, args.dim))
    policy = ClientPolicy(min_key_bits=min(3072, args.key_bits))  # each client's own floor
    app = create_aggregator_app(AggregatorConfig(keyholder_key=kh_pub, token=token))
    with ServerThread(app) as server:
        rid = kh.open_round(server.url, token, config)
        clients = [AggregationClient(server.url, token, pid, signing_key=party_keys[pid], keyholder_key=kh_pub,
                                     policy=policy) for pid in list(parties.parties)[:live]]
        t0 = time.perf_counter()
        threads = [threading.Thread(target=c.submit, args=(rid, updates[i])) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submit = time.perf_counter() - t0
        enc = np.mean([c.timings["update_encrypt"] for c in clients])
        print(f"{live} parties verified the signed round and submitted in {submit:.2f} s "
              f"(mean encrypt + sign {enc:.3f} s, concurrent)")
        try:
            clients[0].submit(rid, updates[0])
        except RemoteError as exc:
            print(f"a second submission by {clients[0].party_id} is refused: {exc.status}")
        finish(args, kh, server.url, token, rid, clients, updates[:live])


def finish(args: argparse.Namespace, kh: KeyHolder, url: str, token: str, rid: str,
           clients: list[AggregationClient], updates: np.ndarray) -> None:
    """Dropouts (the key-holder's signed close, survivors' top-ups), then the release and its error."""
    if args.dropouts:
        from secquant.protocol.aggregation.messages import RoundState
        from secquant.protocol.transport import http_client

        with http_client(url, token) as http:
            state = kh.close_round(http, rid, RoundState.COLLECTING)["state"]
        print(f"{args.dropouts} dropouts: the key-holder's signed close leaves the round {state}")
        if state == "topup":
            shares = sum(c.top_up(rid) for c in clients)
            print(f"survivors added {shares} extra noise shares")
    try:
        release = kh.release(url, token, rid)
    except ReleaseRefusedError as exc:
        print(f"key-holder refused to release: {exc}")
        return
    err = release.estimate - updates.sum(axis=0)
    print(f"released sum of {len(release.contributors)} verified parties with {release.noise_shares} noise shares, "
          f"ε = {release.epsilon:.3f}")
    print("key-holder timings (s): " + ", ".join(f"{k} {v:.3f}" for k, v in release.timings.items()))
    print(f"error vs true sum: rms {np.sqrt(np.mean(err ** 2)):.4f}, expected noise std "
          f"{np.sqrt(release.noise_shares) * args.sigma * args.granularity:.4f}")


if __name__ == "__main__":
    main()
