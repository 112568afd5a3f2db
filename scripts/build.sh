#!/usr/bin/env bash
# Configures and builds one variant.
#   scripts/build.sh PRESET [extra cmake args]   a preset of CMakePresets.json (release, test, asan, tsan,
#                                                fuzz), built in build/PRESET
#   scripts/build.sh DIR [cmake args]            any other build directory (a path: it contains a '/')
# Picks up libkqueue through pkg-config when it is installed (PKG_CONFIG_PATH), so the kqueue backend is
# built and tested too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PRESET|DIR [cmake args]" >&2; exit 2; }
target=$1; shift
if [[ $target == */* ]]; then
  cmake -S "$root" -B "$target" -G Ninja -Wno-dev "$@" >/dev/null
  cmake --build "$target" --parallel "$(nproc)"
else
  (cd "$root" && cmake --preset "$target" -Wno-dev "$@" >/dev/null)
  (cd "$root" && cmake --build --preset "$target" --parallel "$(nproc)")
fi
