#!/usr/bin/env bash
# How far kqserver and nginx are from the floor: the same keep-alive HTTP load on nginx, kqserver
# --protocol http and the two minimal references of bench/floor (epoll with read/write, epoll with
# recv/send, io_uring) and, where io_uring is available, kqserver --backend io_uring too, all with 2 workers/threads, alternating in one run, medians:
#   wrk -t1 -c1000 keep-alive: req/s and server CPU µs per request (user + system, from /proc), and each
#   ratio to nginx; echo 64 B under kqbench -t2 -c1000 (no nginx: it has no echo): req/s and server CPU µs
#   per request, ratios to kqserver; then, once per server, system calls per request under the same wrk
#   load (perf stat on the syscall tracepoints, which unlike strace does not slow the server down and so
#   does not change how its waits batch).
# The io_uring reference is left out (with a line saying why) where it was not built or io_uring is off.
# Usage: bench/compare/floor.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 5s; each run is 1 s longer)
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
duration=${2:-5s}
"$root/scripts/install-deps.sh" linux-perf liburing-dev
prepare
hz=$(getconf CLK_TCK)
floor_epoll=$build/bench/floor_epoll
floor_uring=$build/bench/floor_uring

http_servers=(nginx kqserver epoll-rw epoll-rs)
echo_servers=(kqserver epoll-rw epoll-rs)
declare -A port=([nginx]=18180 [kqserver]=18181 [epoll-rw]=18182 [epoll-rs]=18183 [uring]=18184 [kq-uring]=18185)
declare -A echo_port=([kqserver]=18191 [epoll-rw]=18192 [epoll-rs]=18193 [uring]=18194 [kq-uring]=18195)
declare -A pid echo_pid
uring_ok=0
if [ ! -x "$floor_uring" ]; then
  echo "note: $floor_uring was not built (no liburing found by pkg-config): io_uring left out" >&2
elif timeout 1 "$floor_uring" --threads 1 2>&1 > /dev/null | grep -q "io_uring unavailable"; then
  echo "note: io_uring is unavailable here ($("$floor_uring" 2>&1 > /dev/null | head -1)): left out" >&2
else
  uring_ok=1
  http_servers+=(kq-uring uring)
  echo_servers+=(kq-uring uring)
fi

start_nginx "${port[nginx]}" 2 'Hello from kqserver\n'
pid[nginx]=$ngx_pid
for mode in http echo; do
  if [ $mode = http ]; then p=${port[kqserver]}; else p=${echo_port[kqserver]}; fi
  start_kqserver "$p" --protocol $mode --workers 2
  if [ $mode = http ]; then pid[kqserver]=$kq_pid; else echo_pid[kqserver]=$kq_pid; fi
  if [ $uring_ok = 1 ]; then
    if [ $mode = http ]; then p=${port[kq-uring]}; else p=${echo_port[kq-uring]}; fi
    start_kqserver "$p" --protocol $mode --workers 2 --backend io_uring
    if [ $mode = http ]; then pid[kq-uring]=$kq_pid; else echo_pid[kq-uring]=$kq_pid; fi
  fi
  for s in epoll-rw epoll-rs uring; do
    [ $s = uring ] && [ $uring_ok = 0 ] && continue
    if [ $mode = http ]; then p=${port[$s]}; else p=${echo_port[$s]}; fi
    case $s in
      epoll-rw) cmd=("$floor_epoll" --syscalls rw) ;;
      epoll-rs) cmd=("$floor_epoll" --syscalls rs) ;;
      uring) cmd=("$floor_uring") ;;
    esac
    start_listening "$s.$mode" "${cmd[@]}" --port "$p" --threads 2 --mode $mode
    if [ $mode = http ]; then pid[$s]=$started_pid; else echo_pid[$s]=$started_pid; fi
  done
done

kb_rps() { awk '/ req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") {print $(i-1); exit}}' "$1"; }
kb_cpu() { awk '/^ *server / && /CPU per request/ {print $2; exit}' "$1"; }
for ((r = 1; r <= rounds; r++)); do
  for s in "${http_servers[@]}"; do
    f="$work/wrk.$s.$r"
    read -r u0 s0 < <(cpu_user_sys "${pid[$s]}")
    wrk -t1 -c1000 -d"$duration" "http://127.0.0.1:${port[$s]}/" > "$f"
    read -r u1 s1 < <(cpu_user_sys "${pid[$s]}")
    grep -q "Non-2xx\|Socket errors" "$f" && echo "warning: wrk saw errors against $s: $(grep -h 'Non-2xx\|Socket errors' "$f")" >&2
    n=$(awk '/requests in/ {print $1}' "$f")
    echo "$(wrk_rps "$f") $(awk -v u=$((u1 - u0)) -v k=$((s1 - s0)) -v n="$n" -v hz="$hz" \
      'BEGIN {f = 1e6 / hz / n; printf "%.2f %.2f %.2f", (u + k) * f, u * f, k * f}')" >> "$work/wrk.$s"
  done
  for s in "${echo_servers[@]}"; do
    f="$work/kb.$s.$r"
    "$build/bench/kqbench" -t2 -c1000 -d"$duration" --warmup 1s --server-pid "${echo_pid[$s]}" \
      "127.0.0.1:${echo_port[$s]}" > "$f" 2>&1
    echo "$(kb_rps "$f") $(kb_cpu "$f")" >> "$work/kb.$s"
  done
done

# System calls per request: perf attached to the server's processes (nginx: its workers) for one wrk run.
calls=(read recvfrom write sendto writev epoll_wait epoll_ctl io_uring_enter accept4 close futex)
events=$(printf 'syscalls:sys_enter_%s,' "${calls[@]}")
for s in "${http_servers[@]}"; do
  targets=${pid[$s]}
  [ "$s" = nginx ] && targets=$(pgrep -P "${pid[$s]}" | paste -sd,)
  perf stat -x, -e "${events%,}" -p "$targets" -o "$work/perf.$s" &
  perf_pid=$!
  sleep 0.5  # perf attached
  wrk -t1 -c1000 -d3s "http://127.0.0.1:${port[$s]}/" > "$work/wrk.perf.$s"
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  awk -F, -v n="$(awk '/requests in/ {print $1}' "$work/wrk.perf.$s")" '
    /syscalls:sys_enter_/ {name = $3; sub(/.*sys_enter_/, "", name); v[name] = $1 / n; total += $1 / n; order[++k] = name}
    END {printf "%.3f", total; for (i = 1; i <= k; ++i) printf " %.3f", v[order[i]]; printf "\n"}' \
    "$work/perf.$s" > "$work/sys.$s"
done

med() { awk -v c="$2" '{print $c}' "$1" | median; }
printf '**keep-alive HTTP, wrk -t1 -c1000 -d%s, medians of %d alternating rounds (2 workers/threads each)**\n\n' \
  "$duration" "$rounds"
printf '| server | req/s | CPU µs/request | user | system | system calls/request | req/s vs nginx | CPU vs nginx |\n'
printf '|---|---|---|---|---|---|---|---|\n'
declare -A rps cpu
for s in "${http_servers[@]}"; do
  rps[$s]=$(med "$work/wrk.$s" 1)
  cpu[$s]=$(med "$work/wrk.$s" 2)
done
for s in "${http_servers[@]}"; do
  printf '| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f× | %.2f× |\n' "$s" "${rps[$s]}" "${cpu[$s]}" \
    "$(med "$work/wrk.$s" 3)" "$(med "$work/wrk.$s" 4)" "$(cut -d' ' -f1 "$work/sys.$s")" \
    "$(awk -v a="${rps[$s]}" -v b="${rps[nginx]}" 'BEGIN {print a / b}')" \
    "$(awk -v a="${cpu[$s]}" -v b="${cpu[nginx]}" 'BEGIN {print a / b}')"
done
printf '\n**system calls per request under the same wrk load (perf stat, one 3 s run each)**\n\n'
printf '| server |'; printf ' %s |' "${calls[@]}"; printf '\n|---|'; printf -- '---|%.0s' "${calls[@]}"; echo
for s in "${http_servers[@]}"; do
  printf '| %s |' "$s"; cut -d' ' -f2- "$work/sys.$s" | tr ' ' '\n' | while read -r v; do printf ' %s |' "$v"; done; echo
done
printf '\n**echo 64 B, kqbench -t2 -c1000 -d%s, medians of %d alternating rounds**\n\n' "$duration" "$rounds"
printf '| server | req/s | CPU µs/request | req/s vs kqserver | CPU vs kqserver |\n|---|---|---|---|---|\n'
declare -A erps ecpu
for s in "${echo_servers[@]}"; do
  erps[$s]=$(med "$work/kb.$s" 1)
  ecpu[$s]=$(med "$work/kb.$s" 2)
done
for s in "${echo_servers[@]}"; do
  printf '| %s | %.0f | %.2f | %.2f× | %.2f× |\n' "$s" "${erps[$s]}" "${ecpu[$s]}" \
    "$(awk -v a="${erps[$s]}" -v b="${erps[kqserver]}" 'BEGIN {print a / b}')" \
    "$(awk -v a="${ecpu[$s]}" -v b="${ecpu[kqserver]}" 'BEGIN {print a / b}')"
done
printf '\nrecv/send against read/write (epoll floor, CPU µs per request, medians): http %.2f vs %.2f (%.3f×), echo %.2f vs %.2f (%.3f×)\n' \
  "${cpu[epoll-rs]}" "${cpu[epoll-rw]}" "$(awk -v a="${cpu[epoll-rs]}" -v b="${cpu[epoll-rw]}" 'BEGIN {print a / b}')" \
  "${ecpu[epoll-rs]}" "${ecpu[epoll-rw]}" "$(awk -v a="${ecpu[epoll-rs]}" -v b="${ecpu[epoll-rw]}" 'BEGIN {print a / b}')"
# The same comparison round by round (both ran within seconds of each other): less exposed to a host that
# speeds up or slows down between rounds than the ratio of two medians.
paired() {
  paste -d' ' "$1" "$2" | awk -v c="$3" '{n = NF / 2; r = $c / $(n + c); print r; if (r < 1) ++cheaper}
    END {print "cheaper " cheaper + 0 " of " NR > "/dev/stderr"}' 2> "$work/cheaper" | median
}
for w in wrk:http kb:echo; do
  printf '  %s, round by round: median of recv/send ÷ read/write %.3f×, recv/send cheaper in %s rounds\n' "${w#*:}" \
    "$(paired "$work/${w%:*}.epoll-rs" "$work/${w%:*}.epoll-rw" 2)" "$(sed 's/cheaper //' "$work/cheaper")"
done
# The issue's targets, each server against its own floor, round by round (CPU µs per request).
printf '\nagainst the floors, CPU per request, median of the round-by-round ratios (and rounds where the server was cheaper):\n'
pairs=("kqserver:epoll-rw" "kqserver:epoll-rs")
[ $uring_ok = 1 ] && pairs+=("kq-uring:uring" "kq-uring:kqserver")
for pr in "${pairs[@]}"; do
  a=${pr%%:*} b=${pr#*:}
  printf '  %s ÷ %s: http %.3f×' "$a" "$b" "$(paired "$work/wrk.$a" "$work/wrk.$b" 2)"
  printf ' (cheaper in %s)' "$(sed 's/cheaper //' "$work/cheaper")"
  printf ', echo %.3f×' "$(paired "$work/kb.$a" "$work/kb.$b" 2)"
  printf ' (cheaper in %s)\n' "$(sed 's/cheaper //' "$work/cheaper")"
done
echo "raw runs (http: req/s cpu user sys; echo: req/s cpu):"
for s in "${http_servers[@]}"; do echo "  http $s: $(paste -sd';' "$work/wrk.$s")"; done
for s in "${echo_servers[@]}"; do echo "  echo $s: $(paste -sd';' "$work/kb.$s")"; done
