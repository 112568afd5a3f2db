#!/usr/bin/env bash
# kqserver --protocol http against nginx (same body, access_log off), alternating runs, medians:
#   wrk -t1 -c1000 -d10s keep-alive: requests/s and server CPU µs per request (from /proc);
#   ab -c 100 -n 50000 (a new connection per request): requests/s.
# kqserver runs twice: with its acceptor thread (the default) and with --accept reuseport (nginx's model).
# nginx runs twice: as configured by default (the issue's peer), and with `listen ... deferred`
# (TCP_DEFER_ACCEPT), which kqserver --protocol http uses by default (--defer-accept auto).
# Usage: bench/compare/http.sh [ROUNDS] [DURATION]   (defaults: 3 rounds, 10s)
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
duration=${2:-10s}
prepare
body='Hello from kqserver\n'
start_kqserver 18081 --protocol http --workers 2
kq_acceptor_pid=$kq_pid
start_kqserver 18082 --protocol http --workers 2 --accept reuseport
start_nginx 18080 2 "$body"
ngx_default_pid=$ngx_pid
start_nginx 18083 2 "$body" deferred
servers=(kqserver kqserver-reuseport nginx nginx-deferred)
declare -A port=([kqserver]=18081 [kqserver-reuseport]=18082 [nginx]=18080 [nginx-deferred]=18083)
declare -A pid=([kqserver]=$kq_acceptor_pid [kqserver-reuseport]=$kq_pid [nginx]=$ngx_default_pid
  [nginx-deferred]=$ngx_pid)

for ((r = 1; r <= rounds; r++)); do
  for s in "${servers[@]}"; do
    read -r u0 s0 < <(cpu_user_sys "${pid[$s]}")
    wrk -t1 -c1000 -d"$duration" "http://127.0.0.1:${port[$s]}/" > "$work/wrk.$s.$r"
    read -r u1 s1 < <(cpu_user_sys "${pid[$s]}")
    requests=$(awk '/requests in/ {print $1}' "$work/wrk.$s.$r")
    # req/s, then CPU µs per request: total, user, system (one clock tick is 1e6/CLK_TCK µs)
    echo "$(wrk_rps "$work/wrk.$s.$r") $(awk -v u=$((u1 - u0)) -v k=$((s1 - s0)) -v n="$requests" \
      -v hz="$(getconf CLK_TCK)" 'BEGIN {f = 1e6 / hz / n; printf "%.2f %.2f %.2f", (u + k) * f, u * f, k * f}')" \
      >> "$work/wrk.$s"
    ab -q -c 100 -n 50000 "http://127.0.0.1:${port[$s]}/" > "$work/ab.$s.$r" 2>&1
    awk '/Requests per second/ {print $4}' "$work/ab.$s.$r" >> "$work/ab.$s"
    grep -q "Failed requests:        0" "$work/ab.$s.$r" || echo "warning: ab saw failed requests against $s" >&2
  done
done

printf '| server | wrk req/s (median of %d) | server CPU µs/request | user | system | ab -c100 -n50000 req/s |\n' "$rounds"
printf '|---|---|---|---|---|---|\n'
declare -A rps cpu abr
for s in "${servers[@]}"; do
  rps[$s]=$(awk '{print $1}' "$work/wrk.$s" | median)
  cpu[$s]=$(awk '{print $2}' "$work/wrk.$s" | median)
  abr[$s]=$(median < "$work/ab.$s")
  printf '| %s | %.0f | %.2f | %.2f | %.2f | %.0f |\n' "$s" "${rps[$s]}" "${cpu[$s]}" \
    "$(awk '{print $3}' "$work/wrk.$s" | median)" "$(awk '{print $4}' "$work/wrk.$s" | median)" "${abr[$s]}"
done
echo
for peer in nginx nginx-deferred; do
  for s in kqserver kqserver-reuseport; do
    awk -v n="$s/$peer" -v a="${rps[$s]}" -v b="${rps[$peer]}" -v c="${cpu[$s]}" -v d="${cpu[$peer]}" \
      -v e="${abr[$s]}" -v f="${abr[$peer]}" \
      'BEGIN {printf "%s: wrk req/s %.2fx, CPU per request %.2fx, ab req/s %.2fx\n", n, a/b, c/d, e/f}'
  done
done
echo "raw runs:"; for s in "${servers[@]}"; do
  echo "  $s wrk (req/s cpu_us user_us sys_us): $(tr '\n' ' ' < "$work/wrk.$s")  ab: $(tr '\n' ' ' < "$work/ab.$s")"; done
