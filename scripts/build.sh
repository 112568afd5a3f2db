#!/usr/bin/env bash
# Configures and builds one variant: scripts/build.sh DIR [extra cmake args]. Picks up libkqueue through
# pkg-config when it is installed (PKG_CONFIG_PATH), so the kqueue backend is built and tested too.
set -euo pipefail
dir=$1; shift
cmake -S "$(dirname "$0")/.." -B "$dir" -G Ninja -Wno-dev "$@" >/dev/null
cmake --build "$dir" --parallel "$(nproc)"
