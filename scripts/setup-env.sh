#!/usr/bin/env bash
# Make .venv (once) and install secquant with the extras named in $1 (default: all).
# Sourced by demo.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-all}"
py="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# torch is pinned in pyproject.toml (torch==2.13.0, a local CPU wheel); install it first so no
# other requirement can pull a CUDA build.
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$extras]"
