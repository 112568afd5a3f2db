#!/usr/bin/env bash
# The accept path side by side: a new connection per request, acceptor mode, no deferred accepts
# (--defer-accept 0), 2 workers each. Every round measures, one after another: this build's kqserver,
# optionally another kqserver binary (KQ_BEFORE=path, e.g. a build of an older commit), and nginx under
#   ab -q -c 100 -n CONNECTIONS (HTTP/1.0): system calls per connection (perf stat on the syscall
#     tracepoints, as ab_syscalls.sh) and server CPU per connection (from /proc);
#   kqbench --reconnect -c 50 on echo (kqservers only: nginx does not echo): server CPU per connection
#     (--server-pid) and connections/s;
# then prints the median of ROUNDS rounds per server and figure.
# KQ_VARIANTS adds rows of this build run with other options, "NAME=ARG,ARG ..." (commas for spaces);
# by default the io_uring backend beside epoll, with the acceptor thread and with --accept reuseport
# (uring=--backend,io_uring uring-rp=--backend,io_uring,--accept,reuseport); KQ_VARIANTS= for none.
# KQ_NGINX_REUSEPORT=1 adds nginx with `listen ... reuseport` (its per-worker sockets) as a row too.
# Usage: [KQ_BEFORE=/path/to/kqserver] [KQ_ALSO="NAME=PATH ..."] [KQ_VARIANTS="NAME=ARGS ..."]
#        bench/compare/accept_path.sh [ROUNDS] [CONNECTIONS] [SECONDS]
#        (defaults 5, 20000, 5: the kqbench run's length)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5} n=${2:-20000} secs=${3:-5}
"$root/scripts/install-deps.sh" wrk nginx-light apache2-utils procps linux-perf
cmake -S "$root" -B "$build" -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=Release -DKQ_TESTS=OFF -DKQ_MICROBENCH=OFF >/dev/null
cmake --build "$build" --target kqserver kqbench >/dev/null
body='Hello from kqserver\n'
declare -A bin=([kqserver]="$build/server/kqserver") args=()
servers=(kqserver)
if [ -n "${KQ_BEFORE:-}" ]; then
  bin[before]=$KQ_BEFORE
  servers+=(before)
fi
for nb in ${KQ_ALSO:-}; do  # more binaries to compare: NAME=PATH ...
  bin[${nb%%=*}]=${nb#*=}
  servers+=("${nb%%=*}")
done
for v in ${KQ_VARIANTS-uring=--backend,io_uring uring-rp=--backend,io_uring,--accept,reuseport}; do
  bin[${v%%=*}]=$build/server/kqserver
  args[${v%%=*}]=${v#*=}
  servers+=("${v%%=*}")
done
declare -A http_port http_pid echo_port echo_pid
port=18300
for s in "${servers[@]}"; do
  IFS=, read -r -a extra <<< "${args[$s]:-}"
  start_listening "$s.http" "${bin[$s]}" --port $port --log-level warn --protocol http --workers 2 --defer-accept 0 \
    "${extra[@]}"
  http_port[$s]=$port http_pid[$s]=$started_pid
  start_listening "$s.echo" "${bin[$s]}" --port $((port + 1)) --log-level warn --workers 2 --defer-accept 0 \
    "${extra[@]}"
  echo_port[$s]=$((port + 1)) echo_pid[$s]=$started_pid
  port=$((port + 2))
done
start_nginx $port 2 "$body"
http_port[nginx]=$port http_pid[nginx]=$ngx_pid
servers+=(nginx)
nginx_servers=(nginx)
if [ -n "${KQ_NGINX_REUSEPORT:-}" ]; then
  start_nginx $((port + 1)) 2 "$body" reuseport
  http_port[nginx-rp]=$((port + 1)) http_pid[nginx-rp]=$ngx_pid
  servers+=(nginx-rp)
  nginx_servers+=(nginx-rp)
fi
is_nginx() { [[ " ${nginx_servers[*]} " == *" $1 "* ]]; }
calls=(read recvfrom write writev sendto epoll_wait epoll_ctl accept4 close setsockopt shutdown io_uring_enter)
events=$(printf 'syscalls:sys_enter_%s,' "${calls[@]}")

for r in $(seq "$rounds"); do
  for s in "${servers[@]}"; do
    targets=${http_pid[$s]}
    is_nginx "$s" && targets=$(pgrep -P "${http_pid[$s]}" | paste -sd,)  # the worker processes
    before=$(cpu_ticks "${http_pid[$s]}")
    perf stat -x, -e "${events%,}" -p "$targets" -o "$work/perf" &
    perf_pid=$!
    sleep 0.5  # perf attached
    ab -q -c 100 -n "$n" "http://127.0.0.1:${http_port[$s]}/" > "$work/ab" 2>&1
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    after=$(cpu_ticks "${http_pid[$s]}")
    grep -q "Failed requests:        0" "$work/ab" || echo "warning: ab saw failed requests against $s" >&2
    awk -F, -v n="$n" '/syscalls:sys_enter_/ {name = $3; sub(/.*sys_enter_/, "", name); print name, $1 / n}' \
      "$work/perf" > "$work/calls.$s.$r"
    echo "cpu $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN {print t * 1e6 / hz / n}')" \
      >> "$work/calls.$s.$r"
    echo "rps $(awk '/Requests per second/ {print $4}' "$work/ab")" >> "$work/calls.$s.$r"
    is_nginx "$s" && continue
    "$build/bench/kqbench" --reconnect -c 50 -t 1 -d "${secs}s" --server-pid "${echo_pid[$s]}" \
      "127.0.0.1:${echo_port[$s]}" > "$work/kqbench" 2>/dev/null
    awk '/us CPU per request/ {print "echo_cpu", $2} /req\/s/ {for (i = 1; i <= NF; ++i) if ($i == "req/s") print "echo_cps", $(i - 1)}' \
      "$work/kqbench" >> "$work/calls.$s.$r"
  done
done
[ -n "${KQ_ROUNDS_OUT:-}" ] && cp "$work"/calls.* "$KQ_ROUNDS_OUT"/  # every round's figures, for a look at the spread

printf '| server | ab conn/s | CPU µs/conn (ab) | syscalls/conn |'; printf ' %s |' "${calls[@]}"
echo ' echo conn/s (kqbench) | CPU µs/conn (kqbench) |'
printf '|---|---|---|---|'; printf -- '---|%.0s' "${calls[@]}"; echo '---|---|'
for s in "${servers[@]}"; do
  med() { for r in $(seq "$rounds"); do awk -v k="$1" '$1 == k {print $2}' "$work/calls.$s.$r"; done | median; }
  total() { for r in $(seq "$rounds"); do awk '$1 != "cpu" && $1 != "rps" && $1 !~ /^echo/ {t += $2} END {print t}' "$work/calls.$s.$r"; done | median; }
  printf '| %s | %.0f | %.1f | %.2f |' "$s" "$(med rps)" "$(med cpu)" "$(total)"
  for c in "${calls[@]}"; do printf ' %.2f |' "$(med "$c")"; done
  if is_nginx "$s"; then echo ' - | - |'; else printf ' %.0f | %.1f |\n' "$(med echo_cps)" "$(med echo_cpu)"; fi
done
