#!/usr/bin/env bash
# Install headless Chromium and its matching chromedriver from the system's packages (Debian:
# chromium, chromium-driver) for the browser tests, when they are missing. Idempotent; needs
# root and apt. Selenium is pointed at these paths, so nothing is downloaded at test time.
set -euo pipefail
if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    echo "install-chromium: needs root and apt-get (install chromium and chromium-driver yourself)" >&2
    exit 1
fi
apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium chromium-driver > /dev/null
command -v chromium > /dev/null && command -v chromedriver > /dev/null
