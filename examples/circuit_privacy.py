"""Circuit privacy of BFV responses: the same query answered with and without noise flooding.

Trains the small digits MLP (64 -> 32 -> Square -> 10, 8-bit), compiles it for
BFV twice, with ``circuit_privacy="off"`` and ``"flood"``, answers the same
encrypted query both ways and checks that both decode bit-exactly. Prints what
flooding guarantees and costs (``em.parameters()["circuit_privacy"]``), the
parameters each compile picked, and the noise budget the client measured.

With ``--audit-samples N`` (N >= 1000) it also runs the auditor demonstration:
two one-output linear models W0 and W1 answer the query identically, the
server is framed as a mechanism of its weights, and the client's observable is
SEAL's noise budget of the decrypted response. Without flooding the auditor
tells W0 from W1; with it, it must not.

    python examples/circuit_privacy.py                          # ~10 s
    python examples/circuit_privacy.py --audit-samples 1000     # + the audit, about a minute more

Exit code 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from torch import nn

import secquant
from secquant.data import load_dataset
from secquant.nn import Square


def _train_digits_mlp(epochs: int) -> tuple[secquant.QuantizedModel, np.ndarray]:
    ds = load_dataset("digits")
    torch.manual_seed(0)
    x = ds.x_train.reshape(len(ds.x_train), -1)
    model = nn.Sequential(nn.Linear(64, 32), Square(), nn.Linear(32, 10))
    xt, yt = torch.tensor(x), torch.tensor(ds.y_train)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    return secquant.quantize_model(model, x[:512], bits=8), ds.x_test.reshape(len(ds.x_test), -1)


def _query(qm: secquant.QuantizedModel, xq: np.ndarray, mode: str, privacy: str) -> bool:
    em = secquant.compile(qm, "bfv", mode=mode, circuit_privacy=privacy)
    p = em.parameters()
    client = em.client()
    server = em.server(client.public_material())
    out = client.decrypt(server.evaluate(client.encrypt(xq)))
    exact = bool(np.array_equal(np.asarray(out, dtype=object), np.asarray(qm.forward_int(xq), dtype=object)))
    print(f"\n[{privacy}] N={p['poly_degree']}, coeff modulus {p['coeff_modulus_total_bits']} bits, "
          f"noise margin {p['noise_margin_bits']} bits")
    print(f"[{privacy}] circuit_privacy: {json.dumps(p['circuit_privacy'], indent=2)}")
    print(f"[{privacy}] noise budget: estimated {p['noise_budget_estimate'][-1]['budget_bits']} bits, "
          f"measured by the client {client.last_noise_budget} bits")
    print(f"[{privacy}] bit-exact vs forward_int: {exact}")
    return exact and client.last_noise_budget > 0


def _audit(samples: int) -> bool:
    """W0 and W1 agree on the query; does the response's noise budget tell them apart?"""
    from secquant import quantize_model
    from secquant.audit import audit_mechanism
    from secquant.backends.bfv.server import BFVServer
    from secquant.backends.seal.privacy import CircuitPrivacy

    calib = np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, -0.5], [-0.5, 0.5]], dtype=np.float32)

    def linear(w2: float) -> nn.Module:
        m = nn.Linear(2, 1)  # one output: one response ciphertext per query
        with torch.no_grad():
            m.weight.copy_(torch.tensor([[1.0, w2]]))
            m.bias.zero_()
        return m

    q0, q1 = (quantize_model(linear(w), calib, bits=6) for w in (0.0, 1.0))
    query = q1.quantize_input(np.array([[0.75, 0.0]], dtype=np.float32))  # second feature 0: same output
    ok = bool(np.array_equal(np.asarray(q0.forward_int(query), dtype=object),
                             np.asarray(q1.forward_int(query), dtype=object)))
    print(f"\naudit: W0 = [1, 0], W1 = [1, 1], identical outputs on the query: {ok}")
    for privacy in ("off", "flood"):
        em1 = secquant.compile(q1, "bfv", mode="throughput", circuit_privacy=privacy)
        em0 = secquant.compile(q0, "bfv", mode="throughput", circuit_privacy=privacy)
        client = em1.client()
        servers = {w: BFVServer(em1.backend.params, em.backend.stages, 2, client.public_material(),
                                CircuitPrivacy(privacy)) for w, em in (("W0", em0), ("W1", em1))}

        def mechanism(weights, rng, n, client=client, servers=servers):  # type: ignore[no-untyped-def]
            out = []
            for _ in range(n):
                client.decrypt(servers[weights].evaluate(client.encrypt(query)))
                out.append(client.last_noise_budget)
            return np.asarray(out, dtype=np.int64)

        r = audit_mechanism(mechanism, "W0", "W1", epsilon=0.0, delta=0.0, samples=samples,
                            confidence=1 - 1e-6, seed=0, batch_size=256, name=f"bfv-{privacy}")
        expected = r.violation if privacy == "off" else not r.violation
        print(f"audit [{privacy}]: eps lower bound {r.epsilon_lower_bound:.2f}, weights told apart: {r.violation} "
              f"({'as expected' if expected else 'UNEXPECTED'})")
        ok = ok and expected
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="full-batch Adam epochs (default 30)")
    parser.add_argument("--inputs", type=int, default=4, help="test inputs in the query (default 4)")
    parser.add_argument("--mode", default="throughput", choices=["throughput", "latency"], help="BFV packing mode")
    parser.add_argument("--audit-samples", type=int, default=0,
                        help="samples per weight set for the auditor demonstration (0: skip; at least 1000)")
    args = parser.parse_args(argv)
    if args.audit_samples and args.audit_samples < 1000:
        parser.error("--audit-samples must be 0 (skip) or at least 1000")

    torch.set_num_threads(1)
    qm, x_test = _train_digits_mlp(args.epochs)
    xq = qm.quantize_input(x_test[:args.inputs])
    ok = all([_query(qm, xq, args.mode, privacy) for privacy in ("off", "flood")])
    print(f"\nboth responses decode bit-exactly: {ok}")
    if args.audit_samples:
        ok = _audit(args.audit_samples) and ok
    print("all checks passed" if ok else "SOME CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
