#!/usr/bin/env bash
# System calls per echoed request: kqserver --workers 2 under kqbench -t2 -c1000 (one 64-byte echo
# request outstanding per connection), strace -c -f attached for a fixed window after a warm-up.
# Usage: bench/compare/syscalls.sh [CONNECTIONS] [WINDOW_SECONDS]   (defaults: 1000, 3)
source "$(dirname "$0")/lib.sh"
conns=${1:-1000}
window=${2:-3}
prepare
start_kqserver 18095 --workers 2
"$build/bench/kqbench" -t2 -c"$conns" -d$((window + 4))s --warmup 1s 127.0.0.1:18095 > "$work/kb.out" &
bench=$!
sleep 2  # connections established and warm: the window below sees only steady-state requests
strace -c -f -p "$kq_pid" -o "$work/strace.out" &
st=$!
sleep "$window"
kill -INT "$st"; wait "$st" || true
wait "$bench"
cat "$work/strace.out"
awk '$NF == "sendto" || $NF == "write" || $NF == "writev" {req += $4}
     $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {calls += $4}
     $NF ~ /epoll_ctl|kevent/ {ctl += $4}
     END {printf "requests (replies sent) %d, system calls %d: %.3f per request; epoll_ctl %d\n", req, calls, calls / req, ctl}' "$work/strace.out"
