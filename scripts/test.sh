#!/usr/bin/env bash
# The whole test suite, slow tests included (see README): ruff, mypy, then pytest.
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-env.sh" test
cd "$root"
"$root/.venv/bin/ruff" check secquant tests bench examples
"$root/.venv/bin/mypy"
# Two workers (the machine has two cores); tests/conftest.py keeps each file, and the Ray files, on one worker.
exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup "$@"
