"""Noisy logits from an encrypted server: the BFV and CKKS servers add discrete Gaussian noise.

A logistic-regression-sized model (digits, 64 -> 10) is compiled for BFV and
CKKS with ``release=DiscreteGaussianLogits(σ, resolution_bits=0)``: the server
adds an integer of that policy to every output *inside the ciphertext*, so the
client only ever decrypts ``y + e``.  For each scheme the script prints the
policy's (ε, δ) per query, the noise bound, and the measured noise against the
plaintext integer model (spread, largest |noise|), then runs the privacy
auditor on the BFV server: two queries whose outputs differ by c steps, the
claim of σ = 2c at sensitivity c.

    python examples/release_noise.py --sigma 4 --limit 200
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import secquant
from secquant.audit import audit_mechanism
from secquant.data import load_dataset
from secquant.dp.release import DiscreteGaussianLogits
from secquant.training import TrainOptions, train_classifier


def train_linear(x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    """64 -> 10 logistic regression, fixed seed."""
    torch.manual_seed(0)
    net = nn.Linear(64, 10)
    train_classifier(net, x, y, TrainOptions(epochs=max(1, epochs // 10), lr=1e-2))
    return net.eval()


def measure(qm: secquant.QuantizedModel, scheme: str, policy: DiscreteGaussianLogits, xq: np.ndarray) -> None:
    """Compile with the policy, run the batch encrypted, print the noise the client sees."""
    options = {"precision_bits": 24} if scheme == "ckks" else {}  # CKKS: rounding recovers y + e exactly
    em = secquant.compile(qm, scheme, mode="throughput", release=policy, **options)
    release = em.parameters()["release"]
    noise = np.asarray(em.forward_int(xq), dtype=np.int64) - np.asarray(qm.forward_int(xq), dtype=np.int64)
    print(f"{scheme:5s} noise bound {release['noise_bound']:4d}  measured std {noise.std():5.2f} "
          f"mean {noise.mean():+.3f}  max |noise| {np.abs(noise).max():3d}  outputs {noise.size}")


def audit_bfv(qm: secquant.QuantizedModel, xq: np.ndarray, samples: int) -> None:
    """Two queries with outputs c steps apart on output 0; the auditor tests the claim of σ = 2c."""
    ys = np.asarray(qm.forward_int(xq), dtype=np.int64)[:, 0]
    order = np.argsort(ys)
    gaps = np.diff(ys[order])
    i = int(np.argmin(np.where(gaps > 0, gaps, np.iinfo(np.int64).max)))
    c = int(gaps[i])
    x0, x1 = xq[order[i]:order[i] + 1], xq[order[i + 1]:order[i + 1] + 1]
    policy = DiscreteGaussianLogits(2.0 * c, resolution_bits=0, sensitivity=c)
    epsilon, delta = policy.privacy(1)
    em = secquant.compile(qm, "bfv", mode="throughput", release=policy)
    client = em.client()
    server = em.server(client.public_material())

    def mechanism(x: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
        out = client.decrypt(server.evaluate(client.encrypt(np.repeat(x, n, axis=0))))
        return np.asarray(out, dtype=np.int64)[:, 0]

    result = audit_mechanism(mechanism, x0, x1, epsilon=epsilon, delta=delta, samples=samples,
                             confidence=0.999, seed=0, batch_size=int(em.backend.batch_size()), name="bfv-release")
    print(f"audit: outputs {c} steps apart, claimed eps {epsilon:.3f} (delta {delta:g}) per query; "
          f"audited lower bound {result.epsilon_lower_bound:.3f}; claim violated: {result.violation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=4.0, help="noise σ in output steps (default 4)")
    parser.add_argument("--limit", type=int, default=200, help="test images to run (default 200)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    parser.add_argument("--audit-samples", type=int, default=100_000, help="auditor samples per query")
    args = parser.parse_args()
    data = load_dataset("digits")
    qm = secquant.quantize_model(train_linear(data.x_train, data.y_train, args.epochs), data.x_train, bits=6)
    policy = DiscreteGaussianLogits(args.sigma, resolution_bits=0)
    eps, delta = policy.privacy(10)
    print(f"policy: discrete Gaussian, sigma {args.sigma} steps; eps {eps:.2f} at delta {delta:g} per query "
          f"(10 outputs)")
    xq = qm.quantize_input(data.x_test[: args.limit])
    for scheme in ("bfv", "ckks"):
        measure(qm, scheme, policy, xq)
    audit_bfv(qm, qm.quantize_input(data.x_test), args.audit_samples)


if __name__ == "__main__":
    main()
