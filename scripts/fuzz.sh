#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build/fuzz) and runs each for SECONDS over a scratch
# copy of its seed corpus: scripts/fuzz.sh [SECONDS] [TARGET...]. Exits non-zero if a target crashed;
# the crashing input is kept in build/fuzz/artifacts. CI runs it for 60 s (scripts/test.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_http fuzz_connection fuzz_memcache fuzz_resp)
build=${KQ_FUZZ_BUILD:-$root/build/fuzz}  # KQ_FUZZ_BUILD: another build dir

# The fuzz preset: clang-14, because libclang-rt-14-dev (install-deps.sh) holds the libFuzzer runtime of
# that version. Another directory (KQ_FUZZ_BUILD) gets the same settings.
if [[ $build == "$root/build/fuzz" ]]; then
  "$root/scripts/build.sh" fuzz
else
  "$root/scripts/build.sh" "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKQ_FUZZ=ON -DKQ_WERROR=ON -DKQ_TESTS=OFF -DKQ_MICROBENCH=OFF
fi
mkdir -p "$build/artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# One target per core at a time: each still gets SECONDS of a core, in half the wall time on two cores.
run_target() {
  local target=$1 name=${1#fuzz_}
  local corpus="$scratch/$name"
  cp -r "$root/fuzz/corpus/$name" "$corpus"  # libFuzzer adds what it finds: never into the repo
  local args=(-max_total_time="$seconds" -timeout=30 -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-")
  case $target in
    fuzz_http) args+=(-dict="$root/fuzz/http.dict") ;;
    fuzz_connection) args+=(-max_len=129) ;;  # options + 64 actions of 2 bytes; longer inputs add nothing
    fuzz_memcache) args+=(-dict="$root/fuzz/memcache.dict") ;;
    fuzz_resp) args+=(-dict="$root/fuzz/resp.dict") ;;
  esac
  "$build/fuzz/$target" "${args[@]}" "$corpus" >"$build/$target.log" 2>&1
}
report() {
  local target=$1 log="$build/$1.log" corpus="$scratch/${1#fuzz_}"
  if [[ $2 -eq 0 ]]; then
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$log") (corpus $(ls "$corpus" | wc -l) inputs)"
  else
    echo "$target: CRASHED; input in $build/artifacts, log $log:" >&2
    grep -v -E '^#[0-9]+|^\s*"|Uses: ' "$log" | tail -60 >&2
  fi
}
parallel=$(nproc)
status=0
for ((i = 0; i < ${#targets[@]}; i += parallel)); do
  batch=("${targets[@]:i:parallel}")
  pids=()
  for target in "${batch[@]}"; do
    run_target "$target" &
    pids+=($!)
  done
  for j in "${!batch[@]}"; do
    rc=0
    wait "${pids[$j]}" || rc=$?
    report "${batch[$j]}" "$rc"
    [[ $rc -eq 0 ]] || status=1
  done
done
exit $status
