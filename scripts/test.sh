#!/usr/bin/env bash
# Installs what is missing, checks the style, then builds and runs every test three ways: a
# warnings-as-errors build, the whole suite under ASan+UBSan, and the concurrency tests under TSan;
# then 60 s of each fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

cd "$root"  # the presets (CMakePresets.json) are found from the source directory

echo "== style: every C++ file as .clang-format writes it"
find common acceptor worker protocols server bench tests fuzz examples \( -name '*.cpp' -o -name '*.hpp' \) \
  -not -path '*/build*' -print0 | xargs -0 clang-format-14 --dry-run --Werror

echo "== build and test (-Werror)"
scripts/build.sh test
ctest --preset test -j "$jobs"

echo "== ASan + UBSan: whole suite"
scripts/build.sh asan
ctest --preset asan -j "$jobs"

echo "== TSan: concurrency tests"
scripts/build.sh tsan
# TSan's shadow memory needs a fixed layout that newer kernels' larger mmap randomisation breaks:
# run without ASLR (setarch -R), which is what TSan's own runtime does when it can re-exec.
setarch "$(uname -m)" -R ctest --preset tsan -j "$jobs"

echo "== libFuzzer: each target 60 s over its seed corpus (ASan+UBSan, clang)"
"$root/scripts/fuzz.sh" 60
