#!/usr/bin/env bash
# kqresp (examples/resp, on the library, --workers W) against redis-server 7 (Debian's; persistence off,
# one thread for commands, io-threads off), driven by Redis's own redis-benchmark: SET then GET over a
# key space, -P 1 and -P 16, 50 and 1,000 clients, alternating servers, medians of ROUNDS.
# Reported: each test's requests/s and the server's CPU per request (user + system of all its threads,
# from /proc around each run, so the fair figure when the servers use different numbers of cores).
# Not in CI. Usage: bench/compare/resp.sh [ROUNDS] [REQUESTS]   (defaults: 5 rounds, 200000 per test;
# -P 16 runs 8× as many)   env: WORKERS (2), KEYS (10000), VALUE (32)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
requests=${2:-200000}
workers=${WORKERS:-2}
keys=${KEYS:-10000}
value=${VALUE:-32}
"$root/scripts/install-deps.sh" redis-server redis-tools
prepare

start_listening kqresp "$build/examples/resp/kqresp" --port 18231 --workers "$workers" --log-level warn
kqr_pid=$started_pid
redis-server --port 18232 --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000 > "$work/redis.log" &
rd_pid=$!
pids+=("$rd_pid")
until redis-cli -p 18232 ping > /dev/null 2>&1; do sleep 0.05; done

servers=(kqresp redis)
declare -A port=([kqresp]=18231 [redis]=18232)
declare -A pid=([kqresp]=$kqr_pid [redis]=$rd_pid)
hz=$(getconf CLK_TCK)
setups=("50 1" "50 16" "1000 1" "1000 16")
for setup in "${setups[@]}"; do
  read -r c p <<<"$setup"
  n=$((p > 1 ? requests * 8 : requests))
  for ((r = 1; r <= rounds; r++)); do
    for s in "${servers[@]}"; do
      f="$work/rb.$s.$c.$p.$r"
      before=$(cpu_ticks "${pid[$s]}")
      redis-benchmark -h 127.0.0.1 -p "${port[$s]}" -c "$c" -P "$p" -n "$n" -t set,get -d "$value" -r "$keys" --csv \
        > "$f" 2> "$f.err" || { cat "$f.err" >&2; exit 1; }
      after=$(cpu_ticks "${pid[$s]}")
      set_rps=$(awk -F'"' '$2 == "SET" {print $4}' "$f")
      get_rps=$(awk -F'"' '$2 == "GET" {print $4}' "$f")
      # both tests' requests: 2n
      cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n=$((2 * n)) 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
      echo "$set_rps $get_rps $cpu" >> "$work/rb.$s.$c.$p"
    done
  done
done

printf '| server (%s workers; redis-benchmark -t set,get -r %s -d %s, %d rounds, medians) | clients | -P | SET req/s | GET req/s | server CPU µs/request |\n' \
  "$workers" "$keys" "$value" "$rounds"
printf '|---|---|---|---|---|---|\n'
for setup in "${setups[@]}"; do
  read -r c p <<<"$setup"
  for s in "${servers[@]}"; do
    col() { awk -v k="$1" '{print $k}' "$work/rb.$s.$c.$p" | median; }
    printf '| %s | %s | %s | %.0f | %.0f | %s |\n' "$s" "$c" "$p" "$(col 1)" "$(col 2)" "$(col 3)"
  done
done
echo "raw runs (set get cpu):"
for setup in "${setups[@]}"; do
  read -r c p <<<"$setup"
  for s in "${servers[@]}"; do echo "  $s c=$c P=$p: $(tr '\n' ';' < "$work/rb.$s.$c.$p")"; done
done
