#!/usr/bin/env bash
# bench/plot-intervals end to end on the built binaries: a two-step open-loop run against kqserver echo
# gives one interval per second with the steps' offered counts, and a PNG; bad usage exits 2.
# Usage: test_plot_intervals.sh KQSERVER KQBENCH SOURCE_DIR
set -euo pipefail
kqserver=$1 kqbench=$2 plot=$3/bench/plot-intervals
out=$(mktemp -d /tmp/kqplot.XXXXXX)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$kqserver" --port 0 --workers 1 > "$out/server.out" 2> "$out/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening' "$out/server.out" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^listening //p' "$out/server.out")
[ -n "$addr" ] || fail "kqserver did not start: $(cat "$out/server.log")"

"$kqbench" "$addr" -c 4 --rate 200@1s,400-600@1s --json "$out/r.json" > "$out/r.txt"
[ "$(jq '.intervals | length' "$out/r.json")" = 2 ] || fail "intervals: $(jq -c '.intervals | map(.ok)' "$out/r.json")"
[ "$(jq -c '[.intervals[].offered | round]' "$out/r.json")" = '[200,500]' ] || fail "offered per second"
[ "$(jq '[.intervals[].ok] | add' "$out/r.json")" = "$(jq '.requests.ok' "$out/r.json")" ] || fail "answers"
"$plot" "$out/r.json" "$out/r.png" > /dev/null
[ "$(head -c 4 "$out/r.png" | tail -c 3)" = PNG ] || fail "r.png is not a PNG"

set +e
"$plot" > /dev/null 2>&1; [ $? = 2 ] || fail "no arguments must exit 2"
"$plot" /nonexistent.json "$out/x.png" > /dev/null 2>&1; [ $? = 2 ] || fail "a missing report must exit 2"
echo '{}' > "$out/empty.json"
"$plot" "$out/empty.json" "$out/x.png" > /dev/null 2>&1; [ $? = 2 ] || fail "a report without intervals must exit 2"
echo "plot-intervals test passed"
