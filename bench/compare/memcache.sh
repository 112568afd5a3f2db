#!/usr/bin/env bash
# kqmemcache (examples/memcache, on the library) against memcached 1.6 (Debian's), the same worker count
# (--workers W, -t W), the same load from kqbench -p memcache: a 9:1 get/set mix over a prefilled key
# space (every GET verified), 100 and 1,000 connections, alternating servers, medians of ROUNDS.
# Reported: ops/s, p50/p99, and each server's CPU per operation (user + system of all its threads, from
# /proc over the measured window: kqbench --server-pid); the goal is ops per CPU-second, 1/(CPU per op).
# Not in CI. Usage: bench/compare/memcache.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 5s)
#   env: WORKERS (2), KEYS (10000), VALUE (32), CONNS ("100 1000"), THREADS (kqbench threads, 1)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
duration=${2:-5s}
workers=${WORKERS:-2}
keys=${KEYS:-10000}
value=${VALUE:-32}
threads=${THREADS:-1}
"$root/scripts/install-deps.sh" memcached
prepare
kqbench=$build/bench/kqbench
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)  # memcached refuses to run as root otherwise

start_listening kqmemcache "$build/examples/memcache/kqmemcache" --port 18221 --workers "$workers" \
  --memory-limit 256 --log-level warn
kqm_pid=$started_pid
memcached -l 127.0.0.1 -p 18222 -U 0 -t "$workers" -m 256 -c 4096 "${user[@]}" &
mc_pid=$!
pids+=("$mc_pid")
until (exec 3<>/dev/tcp/127.0.0.1/18222) 2>/dev/null; do sleep 0.05; done

servers=(kqmemcache memcached)
declare -A port=([kqmemcache]=18221 [memcached]=18222)
declare -A pid=([kqmemcache]=$kqm_pid [memcached]=$mc_pid)
kb=(-p memcache --ratio 1:9 --keys "$keys" --value-size "$value" -t "$threads")
for s in "${servers[@]}"; do "$kqbench" "127.0.0.1:${port[$s]}" "${kb[@]}" -c 1 --prefill -n 1 > /dev/null; done

kb_rps() { awk '/ req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") {print $(i-1); exit}}' "$1"; }
kb_lat() { awk -v p="$2" '/latency/ {for (i = 1; i <= NF; i++) if ($i == p) {print $(i+1); exit}}' "$1" | to_us; }
kb_cpu() { awk '/^ *server / && /CPU per request/ {print $2; exit}' "$1"; }
kb_errors() { awk '/^  errors/ {$1 = ""; print; exit}' "$1"; }

conns_list=(${CONNS:-100 1000})
for c in "${conns_list[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    for s in "${servers[@]}"; do
      f="$work/kb.$s.$c.$r"
      "$kqbench" "127.0.0.1:${port[$s]}" "${kb[@]}" -c "$c" -d "$duration" --warmup 1s --server-pid "${pid[$s]}" \
        > "$f" 2>&1
      echo "$(kb_rps "$f") $(kb_lat "$f" p50) $(kb_lat "$f" p99) $(kb_cpu "$f")" >> "$work/kb.$s.$c"
    done
  done
done

printf '| server (%s workers; kqbench -t%s memcache 9:1 get/set, %s keys, %s B, %s × %d, medians) | connections | ops/s | p50 µs | p99 µs | server CPU µs/op | ops per CPU-second |\n' \
  "$workers" "$threads" "$keys" "$value" "$duration" "$rounds"
printf '|---|---|---|---|---|---|---|\n'
for c in "${conns_list[@]}"; do
  for s in "${servers[@]}"; do
    col() { awk -v k="$1" '{print $k}' "$work/kb.$s.$c" | median; }
    cpu=$(col 4)
    printf '| %s | %s | %.0f | %s | %s | %s | %.0f |\n' "$s" "$c" "$(col 1)" "$(col 2)" "$(col 3)" "$cpu" \
      "$(awk -v u="$cpu" 'BEGIN {print (u > 0) ? 1e6 / u : 0}')"
  done
  a=$(awk '{print $4}' "$work/kb.kqmemcache.$c" | median)
  b=$(awk '{print $4}' "$work/kb.memcached.$c" | median)
  echo "| kqmemcache/memcached ops per CPU-second at $c connections | | | | | | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f×", (a > 0) ? b / a : 0}') |"
done
echo "raw runs (ops/s p50 p99 cpu):"
for c in "${conns_list[@]}"; do
  for s in "${servers[@]}"; do echo "  $s c=$c: $(tr '\n' ';' < "$work/kb.$s.$c")"; done
done
for s in "${servers[@]}"; do
  echo "$s last run: $(awk '/^  keys/ {$1 = ""; print}' "$work/kb.$s.${conns_list[-1]}.$rounds"); errors:$(kb_errors "$work/kb.$s.${conns_list[-1]}.$rounds")"
done
