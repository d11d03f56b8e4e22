#!/usr/bin/env bash
# Installs the Debian packages hass builds and tests with, and the npm test clients of
# tests/npm/package.json (the official openai package). Nothing else is downloaded.
set -euo pipefail
PKGS="build-essential clang libclang-rt-dev libopenblas-dev libcjson-dev libpcre2-dev libmicrohttpd-dev libcurl4-openssl-dev curl libsimde-dev jq python3.11-doc chromium"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# node and npm run the test clients (tests/npm): Debian's unless some node is already there
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# the official openai client for test_openai, into tests/npm/node_modules (ignored by git)
cd "$(dirname "$0")/../tests/npm"
if [ ! -f node_modules/openai/package.json ] || [ package-lock.json -nt node_modules/openai/package.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "deps: ok"
