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

# The browser tests (tests/web/test_browser.py) drive Debian's chromium through chromedriver. Install
# both for the test extras when they are missing and we may (root with apt-get, as in CI); never for
# the demo. Quiet, and a no-op once installed.
if [[ ",$extras," == *",test,"* ]] && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup-env: installing chromium and chromium-driver for the browser tests" >&2
    log="$(mktemp)"
    export DEBIAN_FRONTEND=noninteractive
    if { apt-get install -y -qq chromium chromium-driver || { apt-get update -qq \
          && apt-get install -y -qq chromium chromium-driver; }; } >"$log" 2>&1; then
      rm -f "$log"
    else
      echo "setup-env: apt-get could not install chromium (log: $log); the browser tests will fail" >&2
    fi
  else
    echo "setup-env: /usr/bin/chromium or /usr/bin/chromedriver is missing; the browser tests will fail" \
         "until you install Debian's chromium and chromium-driver (as root: apt-get install chromium chromium-driver)" >&2
  fi
fi
