#!/usr/bin/env bash
# Installs the Debian packages the tests need, once; does nothing when they are there.
#   chromium      the browser tests (Swagger UI at /docs, the status and live pages): Playwright
#                 drives this system browser; `playwright install` is never used (it downloads one)
#   redis-server  the rate-limit tests against a real Redis (each test starts its own on a free port)
# Usage: scripts/install-system-packages.sh [package ...]   (default: all of the above)
set -euo pipefail

declare -A PROVIDES=([chromium]=/usr/bin/chromium [redis-server]=/usr/bin/redis-server)
wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
    wanted=(chromium redis-server)
fi

missing=()
for package in "${wanted[@]}"; do
    binary=${PROVIDES[$package]:-}
    if [ -z "$binary" ]; then
        echo "install-system-packages: unknown package $package" >&2
        exit 2
    fi
    [ -x "$binary" ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "install-system-packages: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for package in "${missing[@]}"; do
    if [ ! -x "${PROVIDES[$package]}" ]; then
        echo "install-system-packages: apt-get installed $package but ${PROVIDES[$package]} is missing" >&2
        exit 1
    fi
done
# Debian starts a redis-server service on port 6379 on install; the tests run their own.
if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
