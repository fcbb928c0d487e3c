"""``secquant keys``: make and name the keys that sign and encrypt artifacts.

* ``secquant keys new --out DIR [--name signing]``: an Ed25519 signing key
  pair, ``DIR/NAME.key`` (mode 0600, keep it secret) and ``DIR/NAME.pub``
  (give it to whoever loads your artifacts: ``load(..., trusted=[pub])``).
* ``secquant keys model-key --out FILE``: a 32-byte AES-256-GCM model key from
  :mod:`secrets` (mode 0600) for ``save(..., encrypt_with=FILE)``.
* ``secquant keys id FILE``: the key id of a public/private signing key or a
  model key (a hash: safe to print and to pin).

No command overwrites an existing file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``keys`` and its sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="make signing key pairs and model-encryption keys", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = sub.add_parser("new", help="write an Ed25519 signing key pair (NAME.key mode 0600, NAME.pub)")
    p.add_argument("--out", required=True, help="folder for the two files (created if missing)")
    p.add_argument("--name", default="signing", help="file stem (default signing)")
    p.set_defaults(func=_new)
    p = sub.add_parser("model-key", help="write a 32-byte model-encryption key file (mode 0600)")
    p.add_argument("--out", required=True, help="key file to create")
    p.set_defaults(func=_model_key)
    p = sub.add_parser("id", help="print the key id of a signing key (.key/.pub) or a model key file")
    p.add_argument("path", help="key file")
    p.set_defaults(func=_key_id)


def _new(args: argparse.Namespace) -> int:
    from secquant.signing import generate_signing_keys, key_id, load_public_key

    try:
        private, public = generate_signing_keys(args.out, args.name)
    except FileExistsError as exc:
        from secquant.errors import ConfigError

        raise ConfigError(str(exc)) from None
    print(f"private key {private} (mode 600: keep it secret; sign with save(..., sign_with=...))")
    print(f"public key  {public} (share it; verify with load(..., trusted=[...]))")
    print(f"key id      {key_id(load_public_key(public))}")
    return 0


def _model_key(args: argparse.Namespace) -> int:
    from secquant.errors import ConfigError
    from secquant.sealing import MODEL_KEY_ENV, ModelKey

    key = ModelKey.generate()
    try:
        path = key.write(args.out)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; refusing to overwrite a key (move it away first)") from None
    print(f"model key {path} (mode 600, 32 random bytes; key id {key.key_id})")
    print(f"encrypt with save(..., encrypt_with={str(path)!r}); or export {MODEL_KEY_ENV} as 64 hex characters "
          "(xxd -p -c 64 FILE) and use ModelKey.from_env()")
    return 0


def _key_id(args: argparse.Namespace) -> int:
    from secquant.errors import ConfigError
    from secquant.sealing import ModelKey
    from secquant.signing import key_id, load_private_key, load_public_key

    path = Path(args.path)
    data = path.read_bytes()
    if len(data) == 32:
        print(f"model key {ModelKey.from_file(path).key_id}")
    elif b"PRIVATE KEY" in data:
        print(f"signing key {key_id(load_private_key(path).public_key())}")
    elif b"PUBLIC KEY" in data:
        print(f"signing key {key_id(load_public_key(path))}")
    else:
        raise ConfigError(f"{path} is neither a PEM signing key nor a 32-byte model key")
    return 0
