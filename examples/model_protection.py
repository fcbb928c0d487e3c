"""Protect a quantized model at rest and in transit: sign it, encrypt it, load it only if it checks out.

Trains a logistic model on breast cancer, quantizes it, makes a signing key
pair and a model key, saves the model signed and encrypted, loads it back
(bit-exact), and shows that a re-digested forgery, a swapped signer and a
wrong key are each refused.

    python examples/model_protection.py --out /tmp/protected     # a few seconds
    python examples/model_protection.py --epochs 2 --out /tmp/p

The same steps from the shell: ``secquant keys new --out DIR`` and
``secquant keys model-key --out DIR/model.key``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import secquant
from secquant.data import load_dataset
from secquant.errors import IntegrityError
from secquant.sealing import ModelKey
from secquant.signing import generate_signing_keys
from secquant.training import TrainOptions, train_classifier


def _refused(what: str, fn) -> bool:  # type: ignore[no-untyped-def]
    try:
        fn()
    except IntegrityError as exc:  # DecryptionError is an IntegrityError
        print(f"refused  {what}: {type(exc).__name__}: {exc}")
        return True
    print(f"ACCEPTED {what} (this is a bug)")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--out", default=None, help="folder for keys and the model (default: a temporary folder)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="secquant-protect-"))
    out.mkdir(parents=True, exist_ok=True)

    d = load_dataset("breast_cancer")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(d.n_features, d.n_classes))
    train_classifier(model, d.x_train, d.y_train, TrainOptions(epochs=args.epochs, lr=3e-3))
    qm = secquant.quantize_model(model, d.x_train, bits=8)

    owner_key, owner_pub = generate_signing_keys(out / "owner", "signing")
    thief_key, _ = generate_signing_keys(out / "thief", "signing")
    model_key = ModelKey.generate().write(out / "owner" / "model.key")
    print(f"keys in {out}: {owner_key.name} (mode 600), {owner_pub.name}, {model_key.name} (mode 600)")

    path = qm.save(out / "model.npz", sign_with=owner_key, encrypt_with=model_key)
    print(f"saved {path} ({path.stat().st_size} bytes): signed, weights under AES-256-GCM")
    back = type(qm).load(path, trusted=[owner_pub], decrypt_with=model_key)
    u = qm.quantize_input(d.x_test)
    same = bool(np.array_equal(back.forward_int(u), qm.forward_int(u)))
    print(f"loaded with the owner's public key and the model key; forward_int bit-exact: {same}")

    by_thief = qm.save(out / "thief.npz", sign_with=thief_key)
    plain = qm.save(out / "plain.npz")  # digest only: anyone can edit it and recompute the digest
    ok = all([
        _refused("a model signed by another key", lambda: type(qm).load(by_thief, trusted=[owner_pub])),
        _refused("an unsigned model when a signer is required", lambda: type(qm).load(plain, trusted=[owner_pub])),
        _refused("the wrong model key", lambda: type(qm).load(path, trusted=[owner_pub], decrypt_with=ModelKey.generate())),
        _refused("a truncated file", lambda: type(qm).load(path.read_bytes()[:-10], trusted=[owner_pub], decrypt_with=model_key)),
    ])
    print("all protections hold" if ok and same else "A PROTECTION FAILED")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
