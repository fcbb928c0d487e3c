#!/usr/bin/env bash
# The main job: quantize a real model and run it on encrypted inputs (see README).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-env.sh" all
exec "$root/.venv/bin/secquant" demo "$@"
