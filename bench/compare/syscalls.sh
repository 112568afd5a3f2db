#!/usr/bin/env bash
# System calls per echoed request: kqserver --workers 2 under kqbench -t2 -c1000 (one 64-byte echo
# request outstanding per connection), strace -c -f attached for a fixed window after a warm-up. The
# requests answered in that window come from the server's own counter (/metrics), so the figure holds for
# any backend: epoll and kqueue answer each with a send, io_uring with no system call of its own.
# Usage: bench/compare/syscalls.sh [CONNECTIONS] [WINDOW_SECONDS] [BACKEND]   (defaults: 1000, 3, auto)
source "$(dirname "$0")/lib.sh"
conns=${1:-1000}
window=${2:-3}
backend=${3:-auto}
prepare
start_kqserver 18095 --workers 2 --backend "$backend" --metrics-port 18096
answered() { curl -s 127.0.0.1:18096/metrics | awk '/^kqserver_worker_requests_total/ {n += $2} END {print n + 0}'; }
"$build/bench/kqbench" -t2 -c"$conns" -d$((window + 4))s --warmup 1s 127.0.0.1:18095 > "$work/kb.out" &
bench=$!
sleep 2  # connections established and warm: the window below sees only steady-state requests
strace -c -f -p "$kq_pid" -o "$work/strace.out" &
st=$!
sleep 0.5  # strace attached to every thread
before=$(answered)
sleep "$window"
after=$(answered)
kill -INT "$st"; wait "$st" || true
wait "$bench"
cat "$work/strace.out"
# The two metrics requests in the window cost the server a few calls of its own (accept, read, write,
# close on the metrics thread): counted, they overstate the figure by about 10 calls in all.
awk -v req=$((after - before)) -v backend="$backend" '
     $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {calls += $4}
     $NF ~ /epoll_ctl|kevent/ {ctl += $4}
     $NF == "io_uring_enter" {enter += $4}
     END {printf "backend %s: requests answered %d, system calls %d: %.3f per request; epoll_ctl %d, io_uring_enter %d\n",
          backend, req, calls, calls / req, ctl, enter}' "$work/strace.out"
