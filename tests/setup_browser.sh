#!/bin/sh
# Debian's Chromium for the headless-browser tests (tests/integration/test_api_pages.py).
# Playwright drives this system binary; it never downloads a browser of its own.
set -e
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium
