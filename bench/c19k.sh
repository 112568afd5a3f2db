#!/usr/bin/env bash
# This machine's concurrency limit: one process may hold 20,000 fds, so kqserver (ulimit -n
# 20000; its default --max-connections is that minus a reserve of 32 + 3 per worker) must hold 19,000
# concurrent connections, driven by two kqbench processes of 9,500 connections each (each under its own
# ulimit -n 20000), with every connection served.
# Each kqbench runs one thread (-t1) in open loop: it opens its 9,500 connections at 2,000/s, then sends
# 2 x 9,500 / SECONDS requests/s for SECONDS s (1,900/s each with the default 10 s). Its schedule puts
# slot k on connection k mod 9,500, so every connection is due exactly two requests; sent == ok ==
# 19,000 (a slot that could not leave in time counts as unsent), no errors and connects == 9,500 then
# mean every connection, all open together, got two verified echo replies.
# While they run the script scrapes the server's metrics; the peak of kqserver_worker_connections_active
# (summed over workers) must reach 19,000 and the acceptor must have accepted exactly 19,000.
# Ephemeral ports: all 19,000 connections go from 127.0.0.1 to one server address and port, so
# net.ipv4.ip_local_port_range must offer 19,000 ports (+ a margin for other traffic). If it does not,
# the server listens on 0.0.0.0 (all interfaces; the run is short) and the second kqbench targets
# 127.0.0.2, which doubles the ports available: a port is only unique per (source, destination) pair.
# Usage: bench/c19k.sh [CONNECTIONS_PER_PROCESS] [PROCESSES] [SECONDS]   (defaults 9500, 2, 10)
source "$(dirname "$0")/soak_lib.sh"
per=${1:-9500}
procs=${2:-2}
total=$((per * procs))
connect_rate=2000
seconds=${3:-10}
rate=$(awk -v p="$per" -v s="$seconds" 'BEGIN {printf "%g", 2 * p / s}')
prepare_soak

ports=$(ephemeral_ports)
host_args=()
targets=()
if [ "$ports" -ge $((total + 2000)) ]; then
  for ((i = 1; i <= procs; i++)); do targets+=(127.0.0.1); done
  port_note="$ports ephemeral ports >= $total + 2000: every kqbench targets 127.0.0.1"
else
  host_args=(--host 0.0.0.0)
  for ((i = 1; i <= procs; i++)); do targets+=("127.0.0.$i"); done
  port_note="only $ports ephemeral ports for $total connections: server on 0.0.0.0, kqbench i targets 127.0.0.i"
fi

start_kq --workers 2 --protocol echo "${host_args[@]}"
sleep 0.5
fd_base=$(fd_count)
kbs=()
for ((i = 1; i <= procs; i++)); do
  (ulimit -n 20000 && exec "$build/bench/kqbench" -t1 -c"$per" --connect-rate "$connect_rate" --rate "$rate" \
     -d "${seconds}s" --timeout 5s --json "$work/kb$i.json" "${targets[i - 1]}:$kq_port") > "$work/kb$i.out" 2>&1 &
  kbs+=($!)
  pids+=($!)
done

# Peak concurrency as the server counts it, and its fds, scraped until every kqbench has finished.
peak_active=0; peak_fds=0
running() { local p; for p in "${kbs[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
  a=$(metric_sum kqserver_worker_connections_active); f=$(fd_count)
  [ "$a" -gt "$peak_active" ] && peak_active=$a
  [ "$f" -gt "$peak_fds" ] && peak_fds=$f
  sleep 0.25
done
rc=0
for p in "${kbs[@]}"; do wait "$p" || rc=$?; done
sleep 1
accepted=$(metric_sum kqserver_acceptor_accepted_total)
active_after=$(metric_sum kqserver_worker_connections_active)
fd_after=$(fd_count)
stop_kq && kq_rc=0 || kq_rc=$?

inputs=()
for ((i = 1; i <= procs; i++)); do inputs+=("$work/kb$i.json"); done
"$build/bench/kqbench" merge --json "$work/merged.json" "${inputs[@]}" > "$work/merged.out"

rows=""
all_ok=yes
for ((i = 1; i <= procs; i++)); do
  j="$work/kb$i.json"
  read -r req est con sent ok failed unsent errs p99 up99 < <(jq -r '[.connections.requested, .connections.established,
      .connections.connects, .requests.sent, .requests.ok, .requests.failed, .requests.unsent, .errors.total,
      .latency_us.p99, .latency_uncorrected_us.p99] | @tsv' "$j")
  rows+="| kqbench $i -> ${targets[i - 1]} | $req | $est | $con | $sent | $ok | $failed | $unsent | $errs | $p99 | $up99 |"$'\n'
  if [ "$est" -ne "$per" ] || [ "$con" -ne "$per" ] || [ "$sent" -ne $((2 * per)) ] || [ "$ok" -ne "$sent" ] ||
     [ "$failed" -ne 0 ] || [ "$unsent" -ne 0 ] || [ "$errs" -ne 0 ]; then all_ok=no; fi
done
m="$work/merged.json"
read -r mreq mest mcon msent mok mfailed munsent merrs mp99 mup99 < <(jq -r '[.connections.requested, .connections.established,
    .connections.connects, .requests.sent, .requests.ok, .requests.failed, .requests.unsent, .errors.total,
    .latency_us.p99, .latency_uncorrected_us.p99] | @tsv' "$m")
rows+="| **merged** | $mreq | $mest | $mcon | $msent | $mok | $mfailed | $munsent | $merrs | $mp99 | $mup99 |"

served_ok() { [ "$all_ok" = yes ] && [ "$rc" -eq 0 ]; }
server_ok() { [ "$peak_active" -eq "$total" ] && [ "$accepted" -eq "$total" ] && [ "$active_after" -eq 0 ] &&
              [ "$fd_after" -eq "$fd_base" ] && [ "$kq_rc" -eq 0 ]; }
cat <<EOF

## $total concurrent connections ($procs kqbench processes x $per)

\`bench/c19k.sh $per $procs $seconds\` on $(nproc) cores, $(uname -r); ulimit -n $(ulimit -n) for kqserver and for each kqbench; $port_note.
- server: \`kqserver --workers 2 --protocol echo --metrics-port 0 --log-level info ${host_args[*]} $server_extra\` (default --max-connections: 20000 - 38; exit status $kq_rc)
- each load: \`kqbench -t1 -c$per --connect-rate $connect_rate --rate $rate -d ${seconds}s --timeout 5s\` (2 requests due on every connection), started together

| run | connections requested | established | connects | requests sent | ok | failed | unsent | errors | p99 us | p99 us uncorrected |
|---|---|---|---|---|---|---|---|---|---|---|
$rows

Server: peak connections_active $peak_active (summed over workers), peak open fds $peak_fds (baseline $fd_base), accepted $accepted;
after the clients closed: $active_after active, $fd_after fds.
Server exit summary:
\`\`\`
$(exit_summary)
\`\`\`

- every connection established at once and served (each kqbench: established == connects == $per, sent == ok == $((2 * per)), no errors): $(if served_ok; then echo PASS; else echo FAIL; fi)
- the server held $total at once (peak active == accepted == $total) and released them all (fds back to $fd_base): $(if server_ok; then echo PASS; else echo FAIL; fi)
EOF
