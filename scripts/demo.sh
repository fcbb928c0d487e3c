#!/usr/bin/env bash
# The main job: quantize a real model and run it on encrypted inputs (see README).
# Arguments go to `secquant demo`; `bash scripts/demo.sh --web` serves the browser demo (docs/demo.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup-env.sh" all
exec "$root/.venv/bin/secquant" demo "$@"
