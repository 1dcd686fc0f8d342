#!/usr/bin/env bash
# Debian's chromium for the browser test of `l2l serve` (tests/test_serve.py drives it with playwright,
# using this system browser: playwright downloads nothing). Idempotent; `make test` (and so .ci/run) calls
# it. Without root (and without password-less sudo) or without apt-get it installs nothing and says so:
# the browser test is then skipped and says why. Never fails the set-up.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[setup] skipped chromium (needs root for apt-get): the browser test of l2l serve will be skipped"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "[setup] skipped chromium (no apt-get here): install a chromium on PATH for the browser test of l2l serve"
  exit 0
fi
echo "[setup] installing Debian's chromium (browser test of l2l serve)"
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; then
  chromium --version
else
  echo "[setup] could not install chromium: the browser test of l2l serve will be skipped"
fi
