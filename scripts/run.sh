#!/usr/bin/env bash
# Installs what is missing, builds a release kqserver and starts it (extra arguments go to kqserver).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" >&2
"$root/scripts/build.sh" release >&2  # stdout is kqserver's
exec "$root/build/release/server/kqserver" "$@"
