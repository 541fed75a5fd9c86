#!/usr/bin/env bash
# Install Debian's chromium, which the report test (tests/test_trace_e2e.py) runs headless to
# render the HTML report offline. Idempotent: calls apt-get only when it is missing. Needs root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-browser: need root to install chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
