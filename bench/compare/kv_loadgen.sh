#!/usr/bin/env bash
# kqbench against the key-value stores' own load generators, as loadgen.sh compares it with wrk:
#   memcached: kqbench -p memcache vs memcaslap (libmemcached-tools' memaslap), the same get/set mix
#              (memaslap's cmd proportions 0.1 set / 0.9 get = kqbench --ratio 1:9), threads,
#              connections, key count and length, value size and duration;
#   redis:     kqbench -p resp vs redis-benchmark, which runs SET then GET (it has no mix): kqbench runs
#              --ratio 1:0 then 0:1, each with the same request count, connections, key space and size.
# Alternating runs, medians of ROUNDS. What matters is the generator's own CPU per operation (user +
# system, from the shell's `times` of each tool's run) at the ops/s it reached: the server is the same.
# Usage: bench/compare/kv_loadgen.sh [ROUNDS] [DURATION] [REQUESTS]   (defaults: 5, 10s, 1000000)
#   env: THREADS (1), CONNS (50), KEYS (10000), VALUE (32)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
duration=${2:-10s}
requests=${3:-1000000}
threads=${THREADS:-1}
conns=${CONNS:-50}
keys=${KEYS:-10000}
value=${VALUE:-32}
"$root/scripts/install-deps.sh" memcached libmemcached-tools redis-server redis-tools
prepare
kqbench=$build/bench/kqbench
seconds=$(awk -v d="$duration" 'BEGIN {v=d; u=d; sub(/[a-z]+$/,"",v); sub(/^[0-9.]+/,"",u); print v*((u=="m")?60:1)}')

# timed OUT CMD...: runs CMD with stdout in OUT; prints the CPU seconds (user + system) it took.
timed() {
  local out=$1; shift
  ( "$@" > "$out" 2>&1; times ) | awk 'NR == 2 {
      split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}
kb_rps() { awk '/ req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") {print $(i-1); exit}}' "$1"; }
kb_ok() { awk '/ ok in / {gsub(",", "", $2); print $2; exit}' "$1"; }
kb_errors() { awk '/^  errors/ {$1 = ""; print; exit}' "$1"; }
per_op() { awk -v c="$1" -v n="$2" 'BEGIN {printf "%.2f", (n > 0) ? c * 1e6 / n : 0}'; }
col() { awk -v k="$2" '{print $k}' "$1" | median; }
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)   # memcached refuses to run as root otherwise

echo "# kqbench vs memcaslap and redis-benchmark: $threads thread(s), $conns connections, $keys keys," \
  "$value B values, median of $rounds"

# ---- memcached --------------------------------------------------------------------------------------
mc_port=18211
memcached -l 127.0.0.1 -p "$mc_port" -U 0 -t 2 -m 256 -c 4096 "${user[@]}" &
pids+=($!)
until (exec 3<>"/dev/tcp/127.0.0.1/$mc_port") 2>/dev/null; do sleep 0.05; done
# memaslap needs keys of 16 bytes or more: "kqbench:key:" and the number is 16 to 17 bytes for most keys.
cat > "$work/memaslap.cfg" <<CFG
key
16 16 1
value
$value $value 1
cmd
0 0.1
1 0.9
CFG
# memaslap's key space is a window of items per concurrency (-w, in thousands: 1k at least); kqbench's is
# --keys over all connections, set here to the same total.
win_k=$(( (keys + 500 * conns) / (1000 * conns) )); [ "$win_k" -ge 1 ] || win_k=1
mc_keys=$((win_k * 1000 * conns))
kb_mc=(-p memcache --ratio 1:9 --keys "$mc_keys" --key-prefix kqbench:key: --value-size "$value" -t "$threads" -c "$conns")
"$kqbench" 127.0.0.1:$mc_port "${kb_mc[@]}" --prefill -n 1 > /dev/null
for ((r = 1; r <= rounds; r++)); do
  cpu=$(timed "$work/ms.$r" memcaslap -s 127.0.0.1:$mc_port -F "$work/memaslap.cfg" -t "$duration" -T "$threads" \
    -c "$conns" -w "${win_k}k")
  ops=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "Ops:") print $(i+1)}' "$work/ms.$r")
  tps=$(awk '/^Run time:/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i+1)}' "$work/ms.$r")
  echo "$tps $(per_op "$cpu" "$ops") $cpu" >> "$work/ms"
  cpu=$(timed "$work/kbm.$r" "$kqbench" 127.0.0.1:$mc_port "${kb_mc[@]}" -d "$duration")
  echo "$(kb_rps "$work/kbm.$r") $(per_op "$cpu" "$(kb_ok "$work/kbm.$r")") $cpu" >> "$work/kbm"
done
echo
echo "## memcached 1.6 (-t 2), get/set 9:1, $mc_keys keys, $duration per run"
printf '| tool | ops/s | client CPU µs/op | client CPU s per run |\n|---|---|---|---|\n'
printf '| memcaslap | %.0f | %s | %s |\n' "$(col "$work/ms" 1)" "$(col "$work/ms" 2)" "$(col "$work/ms" 3)"
printf '| kqbench | %.0f | %s | %s |\n' "$(col "$work/kbm" 1)" "$(col "$work/kbm" 2)" "$(col "$work/kbm" 3)"
echo "kqbench last run: $(awk '/^  keys/ {$1 = ""; print}' "$work/kbm.$rounds"); errors:$(kb_errors "$work/kbm.$rounds")"
echo "memcaslap last run: $(grep -E '^(get_misses|cmd_get|cmd_set)' "$work/ms.$rounds" | tr '\n' ' ')"
echo "(memcaslap verifies no values by default; kqbench verifies every GET hit)"
stop_all

# ---- redis ------------------------------------------------------------------------------------------
rd_port=18212
redis-server --port "$rd_port" --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000 > "$work/redis.log" &
pids+=($!)
until redis-cli -p "$rd_port" ping > /dev/null 2>&1; do sleep 0.05; done
rb_threads=(); [ "$threads" -gt 1 ] && rb_threads=(--threads "$threads")
# redis-benchmark's keys are "key:" and 12 digits (16 bytes); kqbench's "kqb:00000000" and the number
# (16 bytes for 90% of 10,000 keys), another prefix so neither reads the other's values.
kb_rd=(-p resp --keys "$keys" --key-prefix kqb:00000000 --value-size "$value" -t "$threads" -c "$conns" -n "$requests")
for ((r = 1; r <= rounds; r++)); do
  cpu=$(timed "$work/rb.$r" redis-benchmark -h 127.0.0.1 -p "$rd_port" -c "$conns" "${rb_threads[@]}" -n "$requests" \
    -t set,get -d "$value" -r "$keys" --csv)
  set_rps=$(awk -F'"' '$2 == "SET" {print $4}' "$work/rb.$r")
  get_rps=$(awk -F'"' '$2 == "GET" {print $4}' "$work/rb.$r")
  echo "$set_rps $get_rps $(per_op "$cpu" $((2 * requests))) $cpu" >> "$work/rb"
  cpu=$(timed "$work/kbr.$r" bash -c '"$@" --ratio 1:0 > "$0.set"; "$@" --ratio 0:1 > "$0.get"' "$work/kbr.$r" \
    "$kqbench" 127.0.0.1:$rd_port "${kb_rd[@]}")
  ok=$(( $(kb_ok "$work/kbr.$r.set") + $(kb_ok "$work/kbr.$r.get") ))
  echo "$(kb_rps "$work/kbr.$r.set") $(kb_rps "$work/kbr.$r.get") $(per_op "$cpu" "$ok") $cpu" >> "$work/kbr"
done
echo
echo "## redis-server 7, $requests SETs then $requests GETs per run"
printf '| tool | SET ops/s | GET ops/s | client CPU µs/op | client CPU s per run |\n|---|---|---|---|---|\n'
printf '| redis-benchmark | %.0f | %.0f | %s | %s |\n' "$(col "$work/rb" 1)" "$(col "$work/rb" 2)" "$(col "$work/rb" 3)" \
  "$(col "$work/rb" 4)"
printf '| kqbench | %.0f | %.0f | %s | %s |\n' "$(col "$work/kbr" 1)" "$(col "$work/kbr" 2)" "$(col "$work/kbr" 3)" \
  "$(col "$work/kbr" 4)"
echo "kqbench last GET run: $(awk '/^  keys/ {$1 = ""; print}' "$work/kbr.$rounds.get");" \
  "errors:$(kb_errors "$work/kbr.$rounds.get")"
echo "(redis-benchmark verifies no values; kqbench verifies every GET hit)"
