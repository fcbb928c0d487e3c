"""Export the service's OpenAPI document: ``python -m secquant.protocol.openapi [--write]``.

Prints the JSON, or with ``--write`` rewrites ``protocols/openapi.json`` (the
file a test compares against :func:`secquant.protocol.inference.app.openapi_schema`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from secquant.artifact import write_bytes_atomic

__all__ = ["export", "main"]

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "protocols" / "openapi.json"


def export() -> str:
    """The OpenAPI document as indented, key-sorted JSON text."""
    from secquant.protocol.inference.app import openapi_schema

    return json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the schema, or write it to ``--path`` with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the file instead of printing")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    text = export()
    if args.write:
        write_bytes_atomic(args.path, text.encode())
        print(f"wrote {args.path}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
