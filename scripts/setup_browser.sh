#!/usr/bin/env bash
# Debian's chromium for the browser test of `l2l serve` (tests/test_serve.py drives it with playwright,
# using this system browser: playwright downloads nothing). Idempotent; .ci/run calls it. Without it
# the browser test is skipped and says why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "[setup] installing Debian's chromium (browser test of l2l serve)"
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version
