#!/usr/bin/env bash
# Shared pieces of bench/soak.sh, bench/idle_memory.sh and bench/c19k.sh, on top of compare/lib.sh
# (build dir, work dir, `ulimit -n 20000`, the EXIT trap that stops every process in `pids`).
# kqserver here listens on a free loopback port with --metrics-port and --log-level info, so its
# Prometheus figures can be read while it runs and its per-worker summary after SIGTERM. Sourced, not run.
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

prepare_soak() {
  "$root/scripts/install-deps.sh" jq curl procps
  "$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Release -DKQ_TESTS=OFF -DKQ_MICROBENCH=OFF
}

# start_kq ARGS...: kqserver on 127.0.0.1 (unless ARGS give --host), free ports; sets kq_pid, kq_host,
# kq_port, kq_mport. Its stdout is $work/kq.out, its log (with the exit summary) $work/kq.log.
# KQ_SERVER_ARGS in the environment adds flags to every server these scripts start (say, `--backend
# epoll` to measure the other backend); the reports show them ($server_extra).
server_extra=${KQ_SERVER_ARGS:-}
start_kq() {
  # shellcheck disable=SC2086  # KQ_SERVER_ARGS is a list of flags: split on purpose
  "$build/server/kqserver" --port 0 --metrics-port 0 --log-level info "$@" $server_extra > "$work/kq.out" 2> "$work/kq.log" &
  kq_pid=$!
  pids+=("$kq_pid")
  until grep -q '^metrics' "$work/kq.out" 2>/dev/null; do
    kill -0 "$kq_pid" 2>/dev/null || { cat "$work/kq.log" >&2; echo "kqserver exited at start" >&2; exit 1; }
    sleep 0.05
  done
  kq_host=$(awk '/^listening/ {sub(/:[0-9]+$/, "", $2); print $2}' "$work/kq.out")
  kq_port=$(awk '/^listening/ {n = split($2, a, ":"); print a[n]}' "$work/kq.out")
  kq_mport=$(awk '/^metrics/ {n = split($2, a, ":"); print a[n]}' "$work/kq.out")
  metrics > /dev/null  # the metrics endpoint's first answer allocates; keep it out of any baseline
}

# stop_kq: SIGTERM (graceful drain), wait; the exit summary lines are then in $work/kq.log.
stop_kq() {
  kill -TERM "$kq_pid" 2>/dev/null || true
  local rc=0
  wait "$kq_pid" || rc=$?
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" != "$kq_pid" ] && keep+=("$p"); done
  pids=("${keep[@]}")
  return "$rc"
}

metrics() { curl -s --max-time 5 "http://127.0.0.1:$kq_mport/metrics"; }
# metric_sum NAME: the sum of NAME over its label sets (e.g. over workers), from one scrape.
metric_sum() { metrics | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d\n", s}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$kq_pid/status"; }
fd_count() { ls "/proc/$kq_pid/fd" | wc -l; }
# exit_summary: kqserver's per-worker and acceptor lines, as logged on SIGTERM.
exit_summary() { grep -E 'worker [0-9]+: connections|acceptor: accepted|reuseport listeners: accepted' "$work/kq.log" | sed 's/^[^ ]* [^ ]* //'; }

# ephemeral_ports: how many local ports connect() may pick from (one per connection to one server address).
ephemeral_ports() { sysctl -n net.ipv4.ip_local_port_range | awk '{print $2 - $1 + 1}'; }

# jqr FILE EXPR: one figure from a kqbench JSON report.
jqr() { jq -r "$2" "$1"; }
