"""Encrypted inference over the network: a server on 127.0.0.1 and a client that keeps its keys.

Trains a small digits MLP (64 -> 16 -> Square -> 10), quantizes it, starts the
secquant inference service (FastAPI + uvicorn) on a free port of 127.0.0.1 in
a background thread, and classifies test digits through
``secquant.protocol.Client``: the client makes the keys, uploads only the
public material, sends ciphertexts and decrypts the answers.  It checks that
the remote scores equal the local ``em.predict`` (exact schemes) or stay within
the stated CKKS error bound.  The client never sees the model: it builds its
role from the server's client spec (``GET /v1/client-spec``), which carries no
weight; the script checks that none of the weight arrays occurs in it.  The
server signs its service spec with a fresh operator key and the client trusts
only that key (``trusted=[pub]``); the plain scheme encrypts nothing, so the
client accepts it only with its own explicit opt-out.

    python examples/serve_and_infer.py --scheme bfv --n 20
    python examples/serve_and_infer.py --scheme paillier --n 5     # interactive: the client applies Square
    python examples/serve_and_infer.py --scheme bfv --executor fork:2   # throughput requests on 2 forked workers

Between two machines, run ``secquant serve model.npz --scheme bfv --host 0.0.0.0
--certfile cert.pem --keyfile key.pem`` on one and ``secquant infer model.npz
--data digits --server https://host:8000 --trust operator.pub`` (token in ``$SECQUANT_TOKEN``) on
the other; see ``examples/protected_service.py`` for tokens, budgets and release policies.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time

import numpy as np
import torch
from torch import nn

from secquant import quantize_model
from secquant.data import load_dataset
from secquant.nn import Square
from secquant.protocol import Client, ModelBinding, SecurityFloor, ServerThread, ServiceConfig, create_app
from secquant.signing import generate_signing_keys


def train(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    """Full-batch Adam on a 64 -> 16 -> Square -> 10 network."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), Square(), nn.Linear(16, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", default="bfv", choices=["bfv", "ckks", "paillier", "plain"])
    parser.add_argument("--n", type=int, default=20, help="test digits to classify")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--bits", type=int, default=6, help="weight bits")
    parser.add_argument("--executor", default=None, metavar="URL",
                        help="evaluate THROUGHPUT-mode BFV/CKKS requests on fork:N, local (Ray) or ray://HEAD:10001")
    args = parser.parse_args()

    data = load_dataset("digits")
    qm = quantize_model(train(data.x_train, data.y_train, args.epochs), data.x_train, bits=args.bits)
    options = {"interactive": True} if args.scheme == "paillier" else {}
    binding = ModelBinding.build(qm, args.scheme, options)
    token = secrets.token_urlsafe(32)
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    floor = SecurityFloor(allow_insecure=args.scheme == "plain")  # plain: no encryption, an explicit opt-out
    with tempfile.TemporaryDirectory() as tmp:
        private, public = generate_signing_keys(f"{tmp}/operator", "operator")
        app = create_app(binding, ServiceConfig(token=token, cache_dir=f"{tmp}/keys", sign_key=private,
                                                executor=args.executor))
        with ServerThread(app) as server:
            offload = app.state.secquant.offload
            where = f"on {offload.executor!r}" if offload is not None else "in the server process"
            print(f"server: {args.scheme} model {binding.model_digest[:16]}... at {server.url}, evaluating {where}")
            t0 = time.perf_counter()
            with Client(server.url, token=token, trusted=[public], floor=floor) as client:
                setup = time.perf_counter() - t0
                print(f"service spec authenticated by {client.authenticated}")
                scores = client.predict(x)
                timings = client.last_timings
    local = binding.em.predict(x)
    if args.scheme == "ckks":
        bound = float(binding.em.parameters()["max_abs_error_int"]) / qm.output_scale
        agrees = bool(np.all(np.abs(scores - qm.predict(x)) <= bound * (1 + 1e-9)))
    else:
        agrees = bool(np.array_equal(scores, local))
    print(f"session setup (keys + upload): {setup:.2f} s")
    print("timings (s): " + ", ".join(f"{k} {v:.3f}" for k, v in timings.items() if "bytes" not in k))
    print(f"sent {timings['request_bytes'] / 2**20:.2f} MiB, received {timings['response_bytes'] / 2**20:.2f} MiB")
    print(f"accuracy on {len(y)} digits: {np.mean(scores.argmax(1) == y):.3f}")
    print(f"remote equals local em.predict: {agrees}")
    spec = binding.em.backend.client_spec()
    blobs = [np.asarray(v, dtype=np.int64).tobytes() for op in qm.ops for v in op.arrays().values()
             if op.kind not in ("square", "poly") and np.size(v) >= 4]
    print(f"client spec: {len(spec)} bytes, carries no weight: {all(b not in spec for b in blobs)}")


if __name__ == "__main__":
    main()
