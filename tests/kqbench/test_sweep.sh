#!/usr/bin/env bash
# bench/sweep end to end on the built binaries: two worker counts, two rounds, under a short load give
# a table with one row per value and no errors, results.json with the same rows, the raw kqbench JSON and both plots;
# the backend sweep has a row per backend built in; a bad parameter and a bad flag exit 2. Usage: test_sweep.sh KQSERVER KQBENCH SOURCE_DIR
set -euo pipefail
export KQSERVER=$1 KQBENCH=$2
sweep=$3/bench/sweep
out=$(mktemp -d /tmp/kqsweep.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$sweep" workers --values "1 2" --rounds 2 --duration 300ms --warmup 100ms --connections 20 --out "$out" > "$out/stdout"
cat "$out/stdout"
rows=$(grep -c '^| [12] |' "$out/stdout") || true
[ "$rows" = 2 ] || fail "expected 2 table rows, got $rows"
[ "$(jq '.rows | length' "$out/results.json")" = 2 ] || fail "results.json rows"
[ "$(jq '.runs | length' "$out/results.json")" = 4 ] || fail "results.json runs: 2 values x 2 rounds"
jq -e '.rows | all(.requests_per_s > 0 and .errors == 0 and .p99_us >= .p50_us)' "$out/results.json" > /dev/null \
  || fail "a row has no requests, has errors, or p99 < p50"
# Balance: 20 connections over 2 round-robin workers is 10/10; over 1 worker 20/20.
[ "$(jq -c '[.rows[].connections_per_worker]' "$out/results.json")" = '[{"max":20,"min":20},{"max":10,"min":10}]' ] \
  || fail "connections per worker: $(jq -c '[.rows[].connections_per_worker]' "$out/results.json")"
for f in 1.r1.json 2.r1.json throughput.png p99.png table.md; do [ -s "$out/$f" ] || fail "missing $f"; done
[ "$(head -c 4 "$out/throughput.png" | tail -c 3)" = PNG ] || fail "throughput.png is not a PNG"

# backend: by default one row per backend the binary was built with (io_uring's name has an underscore).
built=$("$KQSERVER" --help | sed -n 's/.*built into this binary: auto|\([a-z_|]*\).*/\1/p' | tr '|' ' ')
[ -n "$built" ] || fail "kqserver --help names no backend"
if "$sweep" backend --rounds 1 --duration 200ms --warmup 50ms --connections 10 --out "$out/backend" \
     > "$out/backend.stdout" 2> "$out/backend.stderr"; then
  for b in $built; do
    grep -q "^| $b |" "$out/backend.stdout" || fail "no row for backend $b: $(cat "$out/backend.stdout")"
  done
  [ "$(jq '.rows | length' "$out/backend/results.json")" = "$(wc -w <<< "$built")" ] || fail "backend rows"
elif grep -q "io_uring unavailable" "$out/backend.stderr"; then
  echo "backend sweep skipped: this kernel or sandbox refuses io_uring ($(cat "$out/backend.stderr"))"
else
  fail "backend sweep: $(cat "$out/backend.stderr")"
fi

set +e
"$sweep" nonsense > /dev/null 2>&1; [ $? = 2 ] || fail "unknown parameter must exit 2"
"$sweep" workers --bogus > /dev/null 2>&1; [ $? = 2 ] || fail "unknown flag must exit 2"
"$sweep" workers --threads 0 > /dev/null 2>&1; [ $? = 2 ] || fail "--threads 0 must exit 2"
echo "sweep test passed"
