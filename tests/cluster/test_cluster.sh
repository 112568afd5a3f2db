#!/usr/bin/env bash
# bench/cluster end to end on this tree's binaries: HAProxy (mode tcp) in front of two kqserver echo
# backends, loaded by two kqbench segments with one --start-at for 3 s at 400 req/s; then the same in
# mode http on a cluster brought up by `up`, loaded by `run --id` and removed by `down --id`. Each time:
# every request answered, the merged count is the generators' sum, both backends served, and nothing of
# the run is left afterwards (namespace, interface, process, run directory).
# Skipped (77) without root, network namespaces or haproxy.
# Usage: test_cluster.sh KQSERVER KQBENCH SOURCE_DIR
set -euo pipefail
kqserver=$1 kqbench=$2 cluster=$3/bench/cluster
build=$(dirname "$(dirname "$kqserver")")
[ "$build/bench/kqbench" -ef "$kqbench" ] || { echo "FAIL: kqbench is not in $build/bench" >&2; exit 1; }
out=$(mktemp -d /tmp/kqcluster-test.XXXXXX)
id=t$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
cleanup() { "$cluster" down --id "$id" > /dev/null 2>&1 || true; rm -rf "$out"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

check_run() {  # $1: results directory, $2: what
  local r=$1 what=$2 m=$1/merged.json sum n
  [ -f "$m" ] || fail "$what: no merged report"
  [ "$(jq .runs "$m")" = 2 ] || fail "$what: runs $(jq .runs "$m")"
  [ "$(jq .requests.failed "$m")" = 0 ] || fail "$what: failed $(jq .requests.failed "$m")"
  [ "$(jq .errors.total "$m")" = 0 ] || fail "$what: errors $(jq -c .errors "$m")"
  [ "$(jq .requests.ok "$m")" = "$(jq .requests.sent "$m")" ] || fail "$what: sent $(jq .requests.sent "$m") ok $(jq .requests.ok "$m")"
  [ "$(jq .requests.ok "$m")" -gt 0 ] || fail "$what: nothing answered"
  for f in ok sent failed; do
    sum=$(jq -s "map(.requests.$f) | add" "$r/g1.json" "$r/g2.json")
    [ "$sum" = "$(jq ".requests.$f" "$m")" ] || fail "$what: merged $f $(jq ".requests.$f" "$m") vs the generators' $sum"
  done
  [ "$(wc -l < "$r/backends.txt")" = 2 ] || fail "$what: backends.txt: $(cat "$r/backends.txt")"
  while read -r b n; do
    [ "$n" -gt 0 ] || fail "$what: backend $b served $n"
  done < "$r/backends.txt"
  grep -q '^p99 claim ' "$r/report.txt" || fail "$what: no p99 claim line"
  echo "$what: $(jq .requests.ok "$m") answered, $(jq .requests.unsent "$m") unsent, backends $(tr '\n' ' ' < "$r/backends.txt")"
}

check_gone() {  # $1: pids file, $2: what
  ! ip netns list | grep -q "^kqc-$id-" || fail "$2: namespaces left: $(ip netns list | grep "^kqc-$id-")"
  ! ip -o link | grep -q "kqc-$id-" || fail "$2: interfaces left in the host's namespace"
  [ ! -e "/tmp/kqc-$id" ] || fail "$2: /tmp/kqc-$id left"
  local pid name st
  while read -r pid name; do  # gone, or a zombie its reaper has not collected yet
    st=$(awk '{print $3}' "/proc/$pid/stat" 2> /dev/null) || continue
    [ "$st" = Z ] || [ "$st" = X ] || fail "$2: $name (pid $pid) still runs (state $st)"
  done < "$1"
}

set +e
"$cluster" frobnicate > /dev/null 2>&1; [ $? = 2 ] || fail "an unknown command must exit 2"
"$cluster" run --mode udp > /dev/null 2>&1; [ $? = 2 ] || fail "--mode udp must exit 2"
"$cluster" run --build "$build" --id "$id" --out "$out/tcp" --backends 2 --generators 2 --duration 3s \
  --rate 400 --connections 8 > "$out/tcp.txt" 2> "$out/tcp.err"
rc=$?
set -e
if [ "$rc" = 77 ]; then
  echo "SKIP: $(cat "$out/tcp.err")"
  exit 77
fi
[ "$rc" = 0 ] || fail "run exited $rc: $(cat "$out/tcp.err" "$out/tcp.txt")"
cp "$out/tcp.txt" "$out/tcp/report.txt"
check_run "$out/tcp" "mode tcp"
check_gone "$out/tcp/pids" "after run"

"$cluster" up --build "$build" --id "$id" --mode http --backends 2 --generators 2 > "$out/up.txt" 2>&1 ||
  fail "up: $(cat "$out/up.txt")"
[ "$(ip netns list | grep -c "^kqc-$id-")" = 6 ] || fail "up: namespaces $(ip netns list | grep "^kqc-$id-")"
grep -q 'mode http' "/tmp/kqc-$id/haproxy.cfg" || fail "up: not mode http"
[ -S "/tmp/kqc-$id/haproxy.sock" ] || fail "up: no HAProxy stats socket"
mkdir -p "$out/http"
"$cluster" run --build "$build" --id "$id" --out "$out/http" --duration 3s --rate 400 --connections 8 \
  > "$out/http/report.txt" 2> "$out/http.err" || fail "run --id: $(cat "$out/http.err")"
check_run "$out/http" "mode http"
[ "$(ip netns list | grep -c "^kqc-$id-")" = 6 ] || fail "run --id must leave the cluster up"
"$cluster" down --id "$id" 2> /dev/null
check_gone "$out/http/pids" "after down"
echo PASS
