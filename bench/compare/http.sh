#!/usr/bin/env bash
# kqserver --protocol http against nginx (same body, access_log off), alternating runs, medians:
#   wrk -t1 -c1000 -d10s keep-alive: requests/s and server CPU µs per request (from /proc);
#   ab -c 100 -n 50000 (a new connection per request): requests/s.
# kqserver runs twice: with its acceptor thread (the default) and with --accept reuseport (nginx's model).
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
servers=(kqserver kqserver-reuseport nginx)
declare -A port=([kqserver]=18081 [kqserver-reuseport]=18082 [nginx]=18080)
declare -A pid=([kqserver]=$kq_acceptor_pid [kqserver-reuseport]=$kq_pid [nginx]=$ngx_pid)

for ((r = 1; r <= rounds; r++)); do
  for s in "${servers[@]}"; do
    before=$(cpu_ticks "${pid[$s]}")
    wrk -t1 -c1000 -d"$duration" "http://127.0.0.1:${port[$s]}/" > "$work/wrk.$s.$r"
    after=$(cpu_ticks "${pid[$s]}")
    requests=$(awk '/requests in/ {print $1}' "$work/wrk.$s.$r")
    # one clock tick is 1e6/CLK_TCK µs
    echo "$(wrk_rps "$work/wrk.$s.$r") $(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
      'BEGIN {printf "%.2f", t * 1e6 / hz / n}')" >> "$work/wrk.$s"
    ab -q -c 100 -n 50000 "http://127.0.0.1:${port[$s]}/" > "$work/ab.$s.$r" 2>&1
    awk '/Requests per second/ {print $4}' "$work/ab.$s.$r" >> "$work/ab.$s"
    grep -q "Failed requests:        0" "$work/ab.$s.$r" || echo "warning: ab saw failed requests against $s" >&2
  done
done

printf '| server | wrk req/s (median of %d) | server CPU µs/request | ab -c100 -n50000 req/s |\n|---|---|---|---|\n' "$rounds"
declare -A rps cpu abr
for s in "${servers[@]}"; do
  rps[$s]=$(awk '{print $1}' "$work/wrk.$s" | median)
  cpu[$s]=$(awk '{print $2}' "$work/wrk.$s" | median)
  abr[$s]=$(median < "$work/ab.$s")
  printf '| %s | %.0f | %.2f | %.0f |\n' "$s" "${rps[$s]}" "${cpu[$s]}" "${abr[$s]}"
done
echo
for s in kqserver kqserver-reuseport; do
  awk -v n="$s" -v a="${rps[$s]}" -v b="${rps[nginx]}" -v c="${cpu[$s]}" -v d="${cpu[nginx]}" -v e="${abr[$s]}" \
    -v f="${abr[nginx]}" 'BEGIN {printf "%s/nginx: wrk req/s %.2fx, CPU per request %.2fx, ab req/s %.2fx\n", n, a/b, c/d, e/f}'
done
echo "raw runs:"; for s in "${servers[@]}"; do echo "  $s wrk (req/s cpu_us): $(tr '\n' ' ' < "$work/wrk.$s")  ab: $(tr '\n' ' ' < "$work/ab.$s")"; done
