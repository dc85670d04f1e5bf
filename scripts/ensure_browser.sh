#!/usr/bin/env bash
# The UI browser test drives Debian's Chromium headless. Install it when missing (CI machines
# start without it). Idempotent: does nothing when /usr/bin/chromium exists.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo -n"
fi
echo "ensure_browser: installing Debian's chromium package for the browser tests"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/tmp/ensure_browser.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/ensure_browser.log 2>&1
  $SUDO apt-get install -y -q --no-install-recommends chromium >>/tmp/ensure_browser.log 2>&1 || {
    tail -n 20 /tmp/ensure_browser.log >&2
    exit 1
  }
fi
command -v chromium
