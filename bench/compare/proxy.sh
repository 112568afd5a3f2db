#!/usr/bin/env bash
# kqproxy against HAProxy (Debian's, mode tcp) and against no proxy at all, in front of the same two
# kqserver echo backends (1 worker each), alternating runs, medians:
#   kqbench -t2 -c100 echo 64 B through (a) kqproxy --workers 2, (b) haproxy nbthread 2, round-robin,
#   timeout connect 1000 ms like kqproxy's default, (c) straight to one backend (the floor: no proxy hop).
# Reported: req/s, p50/p99 latency, and the proxy process's CPU µs per request (kqbench --server-pid;
# for (c) the backend's, which (a) and (b) pay on top of theirs).
# Not in CI. Usage: bench/compare/proxy.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 5s)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
duration=${2:-5s}
"$root/scripts/install-deps.sh" haproxy
prepare
kqbench=$build/bench/kqbench

start_kqserver 18201 --workers 1 --protocol echo
backend1_pid=$kq_pid
start_kqserver 18202 --workers 1 --protocol echo

start_listening proxy "$build/examples/proxy/kqproxy" --port 18200 --workers 2 --connect-timeout 1000 \
  --upstream 127.0.0.1:18201 --upstream 127.0.0.1:18202
proxy_pid=$started_pid

cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 5000
defaults
  mode tcp
  timeout connect 1000ms
  timeout client 60s
  timeout server 60s
frontend echo
  bind 127.0.0.1:18203
  default_backend echoes
backend echoes
  balance roundrobin
  server b1 127.0.0.1:18201
  server b2 127.0.0.1:18202
CONF
haproxy -W -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
haproxy_pid=$!  # the master; its worker is its child (cpu_ticks adds children, kqbench --server-pid does not)
pids+=("$haproxy_pid")
until "$build/bench/kqcat" --timeout 1 127.0.0.1 18203 < /dev/null > /dev/null 2>&1; do
  kill -0 "$haproxy_pid" 2>/dev/null || { cat "$work/haproxy.log" >&2; exit 1; }
  sleep 0.05
done
haproxy_worker=$(pgrep -P "$haproxy_pid" | head -1)

setups=(kqproxy haproxy direct)
declare -A port=([kqproxy]=18200 [haproxy]=18203 [direct]=18201)
declare -A pid=([kqproxy]=$proxy_pid [haproxy]=${haproxy_worker:-$haproxy_pid} [direct]=$backend1_pid)

kb_rps() { awk '/ req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") {print $(i-1); exit}}' "$1"; }
kb_lat() { awk -v p="$2" '/latency/ {for (i = 1; i <= NF; i++) if ($i == p) {print $(i+1); exit}}' "$1" | to_us; }
kb_cpu() { awk '/^ *server / && /CPU per request/ {print $2; exit}' "$1"; }

for ((r = 1; r <= rounds; r++)); do
  for s in "${setups[@]}"; do
    f="$work/kb.$s.$r"
    "$kqbench" -t2 -c100 -d"$duration" --warmup 1s --server-pid "${pid[$s]}" "127.0.0.1:${port[$s]}" > "$f" 2>&1
    echo "$(kb_rps "$f") $(kb_lat "$f" p50) $(kb_lat "$f" p99) $(kb_cpu "$f")" >> "$work/kb.$s"
  done
done

printf '| path (kqbench -t2 -c100 echo 64 B, %s × %d, medians) | req/s | p50 µs | p99 µs | proxy CPU µs/request |\n' \
  "$duration" "$rounds"
printf '|---|---|---|---|---|\n'
for s in "${setups[@]}"; do
  col() { awk -v k="$1" '{print $k}' "$work/kb.$s" | median; }
  printf '| %s | %.0f | %s | %s | %s |\n' "$s" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
done
echo "(direct: one backend, no proxy; its CPU column is that backend's)"
echo "raw runs (req/s p50 p99 cpu):"
for s in "${setups[@]}"; do echo "  $s: $(tr '\n' ';' < "$work/kb.$s")"; done
echo "a kqbench report:"; cat "$work/kb.kqproxy.1"
