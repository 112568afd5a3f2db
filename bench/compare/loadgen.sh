#!/usr/bin/env bash
# kqbench against wrk, both loading Debian's nginx (2 workers, access_log off, return 200), alternating
# runs, medians; then kqbench's open loop at half the maximum, and echo against kqserver at 1,000
# connections with 1 and 2 workers.
# Usage: bench/compare/loadgen.sh [ROUNDS] [DURATION]   (defaults: 3 rounds, 10s)
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
duration=${2:-10s}
prepare
kqbench=$build/bench/kqbench
start_nginx 18080 2 'Hello from kqserver\n'
url=http://127.0.0.1:18080/

kb_rps() { awk '/ req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") {print $(i-1); exit}}' "$1"; }
kb_lat() { awk -v p="$2" '/latency/ {for (i = 1; i <= NF; i++) if ($i == p) {print $(i+1); exit}}' "$1" | to_us; }

for ((r = 1; r <= rounds; r++)); do
  wrk -t2 -c100 -d"$duration" "$url" > "$work/wrk.thr.$r"; wrk_rps "$work/wrk.thr.$r" >> "$work/wrk.thr"
  "$kqbench" -t2 -c100 -d"$duration" "$url" > "$work/kb.thr.$r"; kb_rps "$work/kb.thr.$r" >> "$work/kb.thr"
  wrk --latency -t1 -c10 -d"$duration" "$url" > "$work/wrk.lat.$r"
  echo "$(wrk_lat "$work/wrk.lat.$r" 50) $(wrk_lat "$work/wrk.lat.$r" 99)" >> "$work/wrk.lat"
  "$kqbench" -t1 -c10 -d"$duration" "$url" > "$work/kb.lat.$r"
  echo "$(kb_lat "$work/kb.lat.$r" p50) $(kb_lat "$work/kb.lat.$r" p99)" >> "$work/kb.lat"
done
wrk_thr=$(median < "$work/wrk.thr"); kb_thr=$(median < "$work/kb.thr")
echo "## nginx, -t2 -c100, closed loop, median of $rounds"
printf '| tool | req/s | p50 µs (-t1 -c10) | p99 µs (-t1 -c10) |\n|---|---|---|---|\n'
printf '| wrk | %.0f | %s | %s |\n' "$wrk_thr" "$(awk '{print $1}' "$work/wrk.lat" | median)" "$(awk '{print $2}' "$work/wrk.lat" | median)"
printf '| kqbench | %.0f | %s | %s |\n' "$kb_thr" "$(awk '{print $1}' "$work/kb.lat" | median)" "$(awk '{print $2}' "$work/kb.lat" | median)"
awk -v a="$kb_thr" -v b="$wrk_thr" 'BEGIN {printf "kqbench/wrk req/s: %.3f\n", a/b}'

rate=$(awk -v m="$kb_thr" 'BEGIN {printf "%d", m / 2}')
for ((r = 1; r <= rounds; r++)); do
  "$kqbench" -t2 -c100 -d"$duration" --rate "$rate" "$url" > "$work/kb.rate.$r"; kb_rps "$work/kb.rate.$r" >> "$work/kb.rate"
done
held=$(median < "$work/kb.rate")
echo; echo "## open loop at half the maximum: asked $rate req/s, held $held req/s (median of $rounds)"
awk -v a="$held" -v b="$rate" 'BEGIN {printf "held/asked: %.4f\n", a/b}'

echo; echo "## echo 64 B against kqserver, kqbench -t2 -c1000, median of $rounds"
printf '| kqserver --workers | req/s | p99 µs |\n|---|---|---|\n'
for w in 1 2; do
  start_kqserver $((18090 + w)) --workers "$w"
  for ((r = 1; r <= rounds; r++)); do
    "$kqbench" -t2 -c1000 -d"$duration" --warmup 1s "127.0.0.1:$((18090 + w))" > "$work/kb.echo.$w.$r"
    echo "$(kb_rps "$work/kb.echo.$w.$r") $(kb_lat "$work/kb.echo.$w.$r" p99)" >> "$work/kb.echo.$w"
  done
  printf '| %d | %.0f | %s |\n' "$w" "$(awk '{print $1}' "$work/kb.echo.$w" | median)" "$(awk '{print $2}' "$work/kb.echo.$w" | median)"
  kill "$kq_pid"; wait "$kq_pid" || true
done
