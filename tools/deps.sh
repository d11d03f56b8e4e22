#!/usr/bin/env bash
# Installs the Debian packages hass builds and tests with. Nothing else is downloaded.
set -euo pipefail
PKGS="build-essential clang libclang-rt-dev libopenblas-dev libcjson-dev libpcre2-dev libsimde-dev jq python3.11-doc chromium"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
echo "deps: ok"
