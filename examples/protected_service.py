"""A protected inference service: signed spec, per-token scopes and budgets, a noisy release policy.

Trains a logistic-regression model on breast cancer (30 features), quantizes
it, and serves it with Paillier on 127.0.0.1, the way an operator who wants to
slow down model extraction would:

* the operator's Ed25519 key signs the service spec (scheme, parameters,
  client-spec hash, release policy); the client trusts only that key;
* two tokens, stored as SHA-256 hashes only: ``analyst`` (scope infer, a query
  budget per window and a privacy budget ε) and ``ops`` (scope admin);
* release policy ``gaussian:SIGMA``: the server adds discrete Gaussian noise
  to the *encrypted* logits before re-randomizing them, and publishes the
  (ε, δ) of one query in the signed spec.

The client classifies test inputs until the server refuses: a 429 when the
query budget of the window is spent, a 403 when the privacy budget is.  The
admin token then reads every token's usage.

    python examples/protected_service.py --sigma 4 --budget 40 --epsilon 20
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
from torch import nn

from secquant import quantize_model
from secquant.data import load_dataset
from secquant.protocol import Client, ModelBinding, ServerThread, ServiceConfig, create_app
from secquant.protocol.errors import RemoteError
from secquant.protocol.inference import TokenTable, new_token, parse_release
from secquant.signing import generate_signing_keys


def logistic(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    """Full-batch Adam on a linear classifier (2 logits)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(x.shape[1], 2))
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sigma", type=float, default=4.0, help="noise in output steps (gaussian:SIGMA)")
    parser.add_argument("--budget", type=int, default=40, help="queries per window for the analyst")
    parser.add_argument("--epsilon", type=float, default=20.0, help="the analyst's privacy budget")
    parser.add_argument("--batch", type=int, default=8, help="inputs per request")
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()

    data = load_dataset("breast_cancer")
    qm = quantize_model(logistic(data.x_train, data.y_train, args.epochs), data.x_train, bits=8)
    binding = ModelBinding.build(qm, "paillier", None, parse_release(f"gaussian:{args.sigma}"))
    analyst, analyst_record = new_token("analyst", ["infer"], query_budget=args.budget, epsilon=args.epsilon)
    ops, ops_record = new_token("ops", ["admin"])
    with tempfile.TemporaryDirectory() as tmp:
        private, public = generate_signing_keys(f"{tmp}/operator", "operator")
        config = ServiceConfig(tokens=TokenTable([analyst_record, ops_record]), cache_dir=f"{tmp}/keys",
                               sign_key=private)
        app = create_app(binding, config)
        with ServerThread(app) as server:
            print(f"server: paillier, release {binding.release.policy.label}, at {server.url}")
            answered, refusal = 0, None
            with Client(server.url, token=analyst, trusted=[public]) as client:
                release = client.release
                print(f"service spec authenticated by {client.authenticated}")
                print(f"release: {release['label']}, eps per query {release['epsilon_per_query']:.3f} at delta "
                      f"{release['delta']:g}, outputs change by at most {release['max_change_steps']} steps")
                exact = noisy = 0
                for start in range(0, len(data.x_test), args.batch):
                    x = data.x_test[start:start + args.batch]
                    try:
                        scores = client.predict(x)
                    except RemoteError as exc:
                        refusal = exc
                        break
                    answered += len(x)
                    exact += int(np.sum(scores.argmax(1) == qm.predict(x).argmax(1)))
                    noisy += int(np.sum(scores != qm.predict(x)))
            print(f"answered {answered} queries; predictions equal the exact model on {exact}; "
                  f"{noisy} noisy logits")
            if refusal is not None:
                print(f"then refused: {refusal.status} {refusal.error}")
            import httpx

            usage = httpx.get(f"{server.url}/v1/admin/tokens", headers={"Authorization": f"Bearer {ops}"}).json()
            for row in usage:
                print(f"token {row['id']}: sessions {row['sessions']}, usage {row['usage']}")
            print(f"budget enforced: {refusal is not None and answered <= args.budget}")


if __name__ == "__main__":
    main()
