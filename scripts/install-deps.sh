#!/bin/sh
# Installs the Debian 12 packages nabla needs to build and test.
# Runs as root, or through sudo when it is available. Safe to run again.
set -eu
PKGS="build-essential cmake pkg-config libopenblas-dev libcmocka-dev zlib1g-dev \
libjansson-dev libinih-dev libomp-dev clang valgrind python3 python3-numpy python3-torch \
dataset-fashion-mnist chromium"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root or sudo to install: $PKGS" >&2; exit 1; fi
else
    SUDO=
fi
missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"; exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
