#!/usr/bin/env bash
# bench/cluster run --drain-one on this tree's binaries: HAProxy (mode http) in front of two kqservers,
# two kqbench segments at 400 req/s for 4 s; 1.5 s in, b1 is drained through HAProxy's runtime API and
# then sent SIGTERM. Asserts: not one request failed or went unanswered across it, the steps happened in
# order and b1 exited while the load ran, both backends served, every second after b1's exit was
# answered (by b2), and nothing of the run is left afterwards.
# Skipped (77) without root, network namespaces, haproxy or socat.
# Usage: test_cluster_drain.sh KQSERVER KQBENCH SOURCE_DIR
set -euo pipefail
kqserver=$1 kqbench=$2 cluster=$3/bench/cluster
build=$(dirname "$(dirname "$kqserver")")
[ "$build/bench/kqbench" -ef "$kqbench" ] || { echo "FAIL: kqbench is not in $build/bench" >&2; exit 1; }
out=$(mktemp -d /tmp/kqcluster-drain.XXXXXX)
id=d$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
cleanup() { "$cluster" down --id "$id" > /dev/null 2>&1 || true; rm -rf "$out"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

set +e
"$cluster" run --drain-one 1 --mode tcp > /dev/null 2>&1; [ $? = 2 ] || fail "--drain-one in mode tcp must exit 2"
"$cluster" run --drain-one 1 --mode http --backends 1 > /dev/null 2>&1; [ $? = 2 ] || fail "--drain-one with one backend must exit 2"
"$cluster" run --build "$build" --id "$id" --out "$out/r" --mode http --backends 2 --generators 2 \
  --duration 4s --rate 400 --connections 8 --drain-one 1.5 > "$out/report.txt" 2> "$out/err.txt"
rc=$?
set -e
if [ "$rc" = 77 ]; then
  echo "SKIP: $(cat "$out/err.txt")"
  exit 77
fi
[ "$rc" = 0 ] || fail "run exited $rc: $(cat "$out/err.txt" "$out/report.txt")"
r=$out/r m=$out/r/merged.json
[ "$(jq .runs "$m")" = 2 ] || fail "runs $(jq .runs "$m")"
[ "$(jq .requests.failed "$m")" = 0 ] || fail "failed $(jq .requests.failed "$m"): $(cat "$r/drain.txt")"
[ "$(jq .errors.total "$m")" = 0 ] || fail "errors $(jq -c .errors "$m")"
[ "$(jq .requests.ok "$m")" = "$(jq .requests.sent "$m")" ] || fail "sent $(jq .requests.sent "$m") ok $(jq .requests.ok "$m")"
# 400 req/s for 4 s: 1,600 scheduled, each sent and answered or (a stalled machine) never sent.
[ "$(jq '.requests.sent + .requests.unsent' "$m")" = 1600 ] || fail "sent $(jq .requests.sent "$m") + unsent $(jq .requests.unsent "$m") is not 1600"
[ "$(jq .requests.ok "$m")" -ge 1200 ] || fail "only $(jq .requests.ok "$m") answered"

# The steps, in order, b1's exit inside the measured 4 s.
steps=$(awk '$1 != "down" {print $1}' "$r/drain.steps" | tr '\n' ' ')  # HAProxy may see b1 DOWN before it exits
[ "$steps" = "drain idle sigterm exited " ] || fail "drain steps: $(cat "$r/drain.steps")"
awk '{if ($2 < prev) bad = 1; prev = $2} END {exit bad}' "$r/drain.steps" ||
  fail "drain steps out of order: $(cat "$r/drain.steps")"
exited=$(awk '$1 == "exited" {print $2}' "$r/drain.steps")
awk -v e="$exited" 'BEGIN {exit !(e >= 1.5 && e < 3)}' || fail "b1 exited at $exited s, not between 1.5 and 3"
grep -q '^drain  *b1 (--drain-by api): runtime API drain at ' "$r/drain.txt" || fail "no drain line: $(cat "$r/drain.txt")"

while read -r b n; do
  [ "$n" -gt 0 ] || fail "backend $b served $n"
done < "$r/backends.txt"
# Every whole second after b1's exit had answers (b2's: about 400; a stall of the machine moves some to
# the next second), none failed.
after=$(jq --argjson e "$exited" '[.intervals[] | select(.t >= ($e | ceil) and .t < 4)]' "$m")
[ "$(jq length <<< "$after")" -ge 1 ] || fail "no whole second after b1's exit at $exited s"
jq -e 'all(.[]; .ok > 0 and .failed == 0)' <<< "$after" > /dev/null ||
  fail "a second after b1's exit: $(jq -c 'map({t, ok, failed})' <<< "$after")"

# Nothing left.
! ip netns list | grep -q "^kqc-$id-" || fail "namespaces left: $(ip netns list | grep "^kqc-$id-")"
[ ! -e "/tmp/kqc-$id" ] || fail "/tmp/kqc-$id left"
while read -r pid name; do
  st=$(awk '{print $3}' "/proc/$pid/stat" 2> /dev/null) || continue
  [ "$st" = Z ] || [ "$st" = X ] || fail "$name (pid $pid) still runs (state $st)"
done < "$r/pids"
echo "PASS: $(jq .requests.ok "$m") answered, 0 failed; $(head -1 "$r/drain.txt"); backends $(tr '\n' ' ' < "$r/backends.txt")"
