#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test three ways: a warnings-as-errors build,
# the whole suite under ASan+UBSan, and the concurrency tests under TSan; then 60 s of each fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

echo "== build and test (-Werror)"
"$root/scripts/build.sh" "$root/build/test" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKQ_WERROR=ON
ctest --test-dir "$root/build/test" --output-on-failure -j "$jobs"

echo "== ASan + UBSan: whole suite"
"$root/scripts/build.sh" "$root/build/asan" -DCMAKE_BUILD_TYPE=Debug -DKQ_WERROR=ON -DKQ_BENCH=OFF \
  -DKQ_SANITIZE=address,undefined
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build/asan" --output-on-failure -j "$jobs"

echo "== TSan: concurrency tests"
"$root/scripts/build.sh" "$root/build/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKQ_WERROR=ON -DKQ_BENCH=OFF \
  -DKQ_SANITIZE=thread
# TSan's shadow memory needs a fixed layout that newer kernels' larger mmap randomisation breaks:
# run without ASLR (setarch -R), which is what TSan's own runtime does when it can re-exec.
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  setarch "$(uname -m)" -R ctest --test-dir "$root/build/tsan" --output-on-failure -j "$jobs" -L concurrency --no-tests=error

echo "== libFuzzer: each target 60 s over its seed corpus (ASan+UBSan, clang)"
"$root/scripts/fuzz.sh" 60
