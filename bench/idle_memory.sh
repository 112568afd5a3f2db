#!/usr/bin/env bash
# User-space memory per idle connection: kqserver's RSS (VmRSS) before and after N connections are
# open and idle, divided by N (the target: at most 1 KiB). Two cases, each on a fresh server
# (--workers 2, echo, --idle-timeout 0) so memory freed by one cannot hide growth in the other:
#   never used  kqbench opens N connections (--connect-rate) and, at --rate 0.01, sends one request in
#               all; the server holds N accepted connections that never sent a byte.
#   used once   kqbench opens N connections and, at --rate N/10, sends each one 64-byte echo request
#               every 10 s; sampled 13 s after the ramp, when every connection has been served once
#               and is idle between requests (~0.01% of them have a request in flight at any moment).
# RSS counts kqserver's user-space pages (heap: Connection and Session objects, the worker's
# containers; stacks; touched binary and library pages). It does not count kernel memory: socket
# structures and buffers (loopback: ~2 KiB of socket struct per end plus whatever data is queued), epoll
# items, the file table.
# Usage: bench/idle_memory.sh [CONNECTIONS]   (default 10000; under ulimit -n 20000, at most ~19,900)
source "$(dirname "$0")/soak_lib.sh"
conns=${1:-10000}
connect_rate=2000
prepare_soak

ramp_s=$(awk -v c="$conns" -v r="$connect_rate" 'BEGIN {printf "%d", c / r + 0.999}')

# measure CASE RATE SAMPLE_AFTER_RAMP_S: one fresh server, one kqbench run; appends a row to $work/rows.
measure() {
  local name=$1 rate=$2 after=$3
  start_kq --workers 2 --protocol echo --idle-timeout 0
  sleep 1
  local rss0 fd0 rss1 fd1 active=0 deadline
  rss0=$(rss_kib); fd0=$(fd_count)
  "$build/bench/kqbench" -t2 -c"$conns" --connect-rate "$connect_rate" --rate "$rate" \
    -d $((after + 10))s --timeout 5s --json "$work/$name.json" "$kq_host:$kq_port" > "$work/$name.kb" 2>&1 &
  local kb=$!
  pids+=("$kb")
  deadline=$((SECONDS + ramp_s + 30))
  until [ "$active" -eq "$conns" ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.5
    active=$(metric_sum kqserver_worker_connections_active)
  done
  sleep $((after > 2 ? after : 2))
  rss1=$(rss_kib); fd1=$(fd_count)
  active=$(metric_sum kqserver_worker_connections_active)
  wait "$kb" || true
  sleep 1
  local fd2 rss2
  fd2=$(fd_count); rss2=$(rss_kib)
  stop_kq || true
  local ok errors
  ok=$(jqr "$work/$name.json" '.requests.ok'); errors=$(jqr "$work/$name.json" '.errors.total')
  awk -v n="$name" -v c="$conns" -v a="$active" -v r0="$rss0" -v r1="$rss1" -v f0="$fd0" -v f1="$fd1" \
      -v f2="$fd2" -v r2="$rss2" -v ok="$ok" -v e="$errors" \
    'BEGIN {printf "| %s | %d | %d | %d | %d | **%.0f** | %d -> %d | %d / %d KiB | %s / %s |\n",
            n, a, r0, r1, r1 - r0, (r1 - r0) * 1024 / c, f0, f1, f2, r2, ok, e}' >> "$work/rows"
  awk -v d=$((rss1 - rss0)) -v c="$conns" -v a="$active" -v back=$([ "$fd2" -eq "$fd0" ] && echo yes || echo no) \
    'BEGIN {printf "%.0f %d %s\n", d * 1024 / c, a, back}' >> "$work/per_conn"
}

: > "$work/rows"; : > "$work/per_conn"
measure "never used" 0.01 2
measure "used once" $((conns / 10)) 13

worst=$(awk '{if ($1 > m) m = $1} END {print m + 0}' "$work/per_conn")
fds_back=$(awk '$3 != "yes" {bad = 1} END {print bad ? "no" : "yes"}' "$work/per_conn")
all_active=$(awk -v c="$conns" '$2 != c {bad = 1} END {print bad ? "no" : "yes"}' "$work/per_conn")
cat <<EOF

## Idle connections: kqserver user-space memory

\`bench/idle_memory.sh $conns\` on $(nproc) cores, $(uname -r); kqserver --workers 2 --protocol echo --idle-timeout 0 $server_extra;
kqbench -t2 -c$conns --connect-rate $connect_rate (never used: --rate 0.01; used once: --rate $((conns / 10)), sampled ${ramp_s}+13 s in).

| case | connections open (server) | RSS before KiB | RSS with them KiB | delta KiB | bytes/connection | server fds | after kqbench closed: fds / RSS KiB | kqbench ok / errors |
|---|---|---|---|---|---|---|---|---|
$(cat "$work/rows")

RSS counts kqserver's user-space pages (heap objects per connection, the workers' containers). Not in RSS: the
kernel's socket structures and buffers, epoll items and fd table entries of those connections. RSS after the
close stays up: freed heap goes back to malloc, not necessarily to the kernel (the fd count is what must return).
Result: worst case $worst B per idle connection, target <= 1024 B: $([ "$worst" -le 1024 ] && [ "$all_active" = yes ] && echo PASS || echo FAIL)$([ "$all_active" = yes ] || echo " (not every connection was open at the sample)")
fds back to the baseline after kqbench closed: $fds_back
EOF
