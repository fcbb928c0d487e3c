"""Circuit privacy of CKKS responses: Gaussian flooding sized for IND-CPA^D.

A CKKS client decodes ``y + e``, where the noise ``e`` depends on the server's
weights.  This script compiles a digits logistic regression (64 -> 10, 6-bit)
for CKKS with ``circuit_privacy="off"`` and ``"flood"``, answers the same
encrypted batch both ways, and prints what flooding guarantees and costs
(``em.parameters()["circuit_privacy"]``), the stated error bounds and the
measured deviation of the raw decoded outputs.

With ``--audit-samples N`` it also runs the auditor demonstration: two weight
sets W0 = (1, 1, 0) and W1 = (1, 0, 1) answer the query (0.75, 0, 0)
identically; the client, who knows the noise of its own encryption of the
second feature, checks whether the decoded output's deviation has the same
sign.  Without flooding the auditor tells W0 from W1; with it, it must not.

    python examples/ckks_circuit_privacy.py --audit-samples 60000

Exit code 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import secquant
from secquant.audit import audit_mechanism
from secquant.backends.ckks.client import CKKSClient
from secquant.backends.ckks.server import CKKSServer
from secquant.backends.ckks.wire import BATCH
from secquant.backends.seal.context import sealapi
from secquant.backends.seal.serialize import load_seal
from secquant.backends.seal.wire import unframe
from secquant.data import load_dataset
from secquant.training import TrainOptions, train_classifier


def linear(w: list[list[float]], x: np.ndarray, y: np.ndarray | None = None, epochs: int = 0) -> nn.Module:
    """A linear layer starting from weights ``w`` (bias-free unless trained), trained on (x, y) if given."""
    torch.manual_seed(0)
    m = nn.Linear(len(w[0]), len(w), bias=y is not None)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w))
    if y is not None:
        train_classifier(m, x, y, TrainOptions(epochs=max(1, epochs // 10), lr=1e-2))
    return m.eval()


def compare(epochs: int, inputs: int) -> bool:
    """off against flood on one batch: guarantee, bounds, measured deviation."""
    d = load_dataset("digits")
    qm = secquant.quantize_model(linear(np.zeros((10, 64)).tolist(), d.x_train, d.y_train, epochs), d.x_train, bits=6)
    xq = qm.quantize_input(d.x_test[:inputs])
    ok = True
    for privacy in ("off", "flood"):
        em = secquant.compile(qm, "ckks", mode="throughput", circuit_privacy=privacy)
        params = em.parameters()
        client = em.client()
        raw, _ = client.decrypt_slots(em.server(client.public_material()).evaluate(client.encrypt(xq)))
        deviation = float(np.max(np.abs(raw - np.asarray(qm.forward_int(xq), dtype=np.float64))))
        print(f"{privacy}: N={params['poly_degree']}, stated error {params['max_abs_error']:.3g} steps, "
              f"measured {deviation:.3g}")
        print(json.dumps(params["circuit_privacy"], indent=1))
        ok &= deviation <= params["max_abs_error"]
    print(f"every deviation within its stated bound: {ok}")
    return ok


def sign_agreement(client: CKKSClient, servers: dict[str, CKKSServer], query: np.ndarray, exact: float,
                   slots: int) -> Callable[[str, np.random.Generator, int], np.ndarray]:
    """The mechanism: does the decoded output's deviation share the sign of the client's own noise on
    feature 2 (an encryption of zero, whose noise the key holder can read)?"""

    def batch(weights: str, n: int) -> np.ndarray:
        payload = client.encrypt(np.repeat(query, n, axis=0))
        own = load_seal(unframe(payload, BATCH)[1][1:2], lambda: sealapi().Ciphertext(client.context),
                        client.context, "input")[0]
        values, _ = client.decrypt_slots(servers[weights].evaluate(payload))
        return (np.sign(values[:, 0] - exact) == np.sign(client._decode(own)[:n])).astype(np.int64)

    def mechanism(weights: str, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.concatenate([batch(weights, min(slots, n - k)) for k in range(0, n, slots)])

    return mechanism


def audit(samples: int) -> bool:
    """The auditor demonstration (see the module docstring)."""
    calib = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.5, -0.5, 0.5], [-0.5, 0.5, -0.5]], dtype=np.float32)
    q0, q1 = (secquant.quantize_model(linear([w], calib), calib, bits=6) for w in ([1.0, 1.0, 0.0], [1.0, 0.0, 1.0]))
    query = q1.quantize_input(np.array([[0.75, 0.0, 0.0]], dtype=np.float32))
    exact = float(np.asarray(q1.forward_int(query)).reshape(-1)[0])
    ok = True
    for privacy in ("off", "flood"):
        ems = [secquant.compile(q, "ckks", mode="throughput", circuit_privacy=privacy, transfer="latency")
               for q in (q0, q1)]
        client = ems[1].client()
        if not isinstance(client, CKKSClient):
            raise TypeError("a CKKS model makes a CKKSClient")
        servers = {f"W{i}": CKKSServer(em.backend.plan, 3, client.public_material()) for i, em in enumerate(ems)}
        slots = int(ems[1].backend.batch_size())
        result = audit_mechanism(sign_agreement(client, servers, query, exact, slots), "W0", "W1", epsilon=0.0,
                                 samples=samples, confidence=0.999, seed=0, batch_size=slots,
                                 name=f"ckks-{privacy}")
        print(f"audit {privacy}: epsilon lower bound {result.epsilon_lower_bound:.3f}, "
              f"weights told apart: {result.violation}")
        ok &= result.violation is (privacy == "off")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="full-batch Adam epochs (default 60)")
    parser.add_argument("--inputs", type=int, default=64, help="test inputs in the batch (default 64)")
    parser.add_argument("--audit-samples", type=int, default=0, help="auditor samples per weight set (0: skip)")
    args = parser.parse_args(argv)
    ok = compare(args.epochs, args.inputs)
    if args.audit_samples:
        ok &= audit(args.audit_samples)
    print("all checks passed" if ok else "a check FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
