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
# In a closed loop each connection's cycle is its latency plus the time the generator holds the reply
# before sending the next request, which neither tool counts: connections / (req/s) - mean latency.
# Not for wrk: its mean includes the synthetic samples its stats_correct() adds below every latency
# longer than two cycles, so the difference comes out meaningless (often negative).
gap_us() { awk -v c=10 -v x="$1" -v m="$2" 'BEGIN {printf "%.0f", c / x * 1e6 - m}'; }
# wrk_row / kb_row FILE: "p50 p99 req/s client-gap" of a -t1 -c10 run
wrk_row() { echo "$(wrk_lat "$1" 50) $(wrk_lat "$1" 99) $(wrk_rps "$1") n/a"; }
kb_row() { local x m; x=$(kb_rps "$1"); m=$(kb_lat "$1" mean); echo "$(kb_lat "$1" p50) $(kb_lat "$1" p99) $x $(gap_us "$x" "$m")"; }
col() { awk -v k="$2" '{print $k}' "$1" | median; }

for ((r = 1; r <= rounds; r++)); do
  wrk -t2 -c100 -d"$duration" "$url" > "$work/wrk.thr.$r"; wrk_rps "$work/wrk.thr.$r" >> "$work/wrk.thr"
  "$kqbench" -t2 -c100 -d"$duration" "$url" > "$work/kb.thr.$r"; kb_rps "$work/kb.thr.$r" >> "$work/kb.thr"
  wrk --latency -t1 -c10 -d"$duration" "$url" > "$work/wrk.lat.$r"; wrk_row "$work/wrk.lat.$r" >> "$work/wrk.lat"
  "$kqbench" -t1 -c10 -d"$duration" "$url" > "$work/kb.lat.$r"; kb_row "$work/kb.lat.$r" >> "$work/kb.lat"
done
wrk_thr=$(median < "$work/wrk.thr"); kb_thr=$(median < "$work/kb.thr")
echo "## nginx, closed loop, median of $rounds: req/s at -t2 -c100; latency at -t1 -c10"
printf '| tool | req/s | p50 µs | p99 µs | req/s at -c10 | client gap µs at -c10 |\n|---|---|---|---|---|---|\n'
for t in wrk kb; do
  name=$([ $t = wrk ] && echo wrk || echo kqbench); thr=$([ $t = wrk ] && echo "$wrk_thr" || echo "$kb_thr")
  printf '| %s | %.0f | %s | %s | %.0f | %s |\n' "$name" "$thr" "$(col "$work/$t.lat" 1)" "$(col "$work/$t.lat" 2)" \
    "$(col "$work/$t.lat" 3)" "$(col "$work/$t.lat" 4)"
done
awk -v a="$kb_thr" -v b="$wrk_thr" 'BEGIN {printf "kqbench/wrk req/s: %.3f\n", a/b}'
echo "(wrk's latencies include the samples its stats_correct() synthesises for long waits; kqbench's are measured only)"

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
