#!/usr/bin/env bash
# Per connection under ab (a new connection per request): each server's system calls, counted by the
# kernel's syscall tracepoints (perf stat, which unlike strace does not slow the server down and so
# does not change how its waits batch), and its CPU time from /proc. Servers: kqserver --protocol http
# as by default (--defer-accept auto = 1 s), kqserver --defer-accept 0, nginx, nginx `listen deferred`;
# all with 2 workers, measured one after another.
# Usage: bench/compare/ab_syscalls.sh [CONNECTIONS]   (default 30000; ab -c 100)
source "$(dirname "$0")/lib.sh"
n=${1:-30000}
"$root/scripts/install-deps.sh" linux-perf
prepare
body='Hello from kqserver\n'
start_kqserver 18086 --protocol http --workers 2
kq_default=$kq_pid
start_kqserver 18087 --protocol http --workers 2 --defer-accept 0
start_nginx 18084 2 "$body"
ngx_default=$ngx_pid
start_nginx 18085 2 "$body" deferred
servers=(kqserver kqserver-defer0 nginx nginx-deferred)
declare -A port=([kqserver]=18086 [kqserver-defer0]=18087 [nginx]=18084 [nginx-deferred]=18085)
declare -A pid=([kqserver]=$kq_default [kqserver-defer0]=$kq_pid [nginx]=$ngx_default [nginx-deferred]=$ngx_pid)
calls=(read recvfrom write writev sendto epoll_wait epoll_ctl accept4 close setsockopt shutdown)
events=$(printf 'syscalls:sys_enter_%s,' "${calls[@]}")

printf '| server | ab req/s | CPU µs/conn | syscalls/conn |'; printf ' %s |' "${calls[@]}"; echo
printf '|---|---|---|---|'; printf -- '---|%.0s' "${calls[@]}"; echo
for s in "${servers[@]}"; do
  targets=${pid[$s]}
  case $s in nginx*) targets=$(pgrep -P "${pid[$s]}" | paste -sd,) ;; esac  # the worker processes
  before=$(cpu_ticks "${pid[$s]}")
  perf stat -x, -e "${events%,}" -p "$targets" -o "$work/perf.$s" &
  perf_pid=$!
  sleep 0.5  # perf attached
  ab -q -c 100 -n "$n" "http://127.0.0.1:${port[$s]}/" > "$work/ab.$s" 2>&1
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  after=$(cpu_ticks "${pid[$s]}")
  grep -q "Failed requests:        0" "$work/ab.$s" || echo "warning: ab saw failed requests against $s" >&2
  awk -F, -v s="$s" -v n="$n" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v rps="$(awk '/Requests per second/ {print $4}' "$work/ab.$s")" '
    /syscalls:sys_enter_/ {name = $3; sub(/.*sys_enter_/, "", name); v[name] = $1 / n; total += $1 / n; order[++k] = name}
    END {printf "| %s | %.0f | %.1f | %.2f |", s, rps, t * 1e6 / hz / n, total
         for (i = 1; i <= k; ++i) printf " %.2f |", v[order[i]]; printf "\n"}' "$work/perf.$s"
done
