#!/bin/sh
# Installs what minienc needs on Debian (when missing), then configures and builds it in ./build.
# Run as root on a fresh machine; later runs only rebuild.  Usage: sh scripts/bootstrap.sh [cmake args...]
set -eu
cd "$(dirname "$0")/.."

# libopenmpi-dev and openmpi-bin: data-parallel training under mpirun (the minienc-mpi.so plugin, tests/e2e_mpi.sh)
PACKAGES="gcc libc6-dev make cmake pkg-config libopenblas-dev libcmocka-dev libstb-dev libcjson-dev libinih-dev fonts-dejavu-core libopenmpi-dev openmpi-bin"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "minienc: error: missing Debian packages:$missing; run this script as root to install them" >&2
        exit 1
    fi
    echo "bootstrap: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs" >/dev/null
echo "bootstrap: built build/minienc" >&2
