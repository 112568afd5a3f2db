#!/usr/bin/env bash
# Soak: kqserver (--workers 2, echo) holding CONNECTIONS connections under an open-loop load of RATE
# requests/s in total for MINUTES minutes, after one minute of ramp-up and warm-up. The targets:
# server RSS flat within 5%, no fd growth, p99 stable.
# Design: one kqbench run holds the same connections for the whole soak (a new run per minute would
# close and reopen them all, which is a churn test, not a soak). It opens them at CONNECTIONS/10 per
# second (10 s), warms up for 50 s, then measures MINUTES minutes; its --interval 60s prints that
# minute's p50/p99/max (corrected for coordinated omission: from each request's intended send time),
# so the first line is the warm-up minute and the next MINUTES lines are the measured minutes. Every
# 10 s the script samples the server's VmRSS (/proc/PID/status), its open fds (/proc/PID/fd) and its
# connections_active metric. After kqbench closes its connections the fd count must fall back to the
# pre-load one (an fd kept by a closed connection would show there).
# Pass: post-warm-up RSS (max - min) / min <= 5%; fds (max - min) <= CONNECTIONS/1000 and back to the
# baseline after the close; the highest per-minute p99 <= 2 x the median one; no errors, nothing unsent.
# Usage: bench/soak.sh [CONNECTIONS] [MINUTES] [RATE]   (defaults 10000, 10, 5000)
source "$(dirname "$0")/soak_lib.sh"
conns=${1:-10000}
minutes=${2:-10}
rate=${3:-5000}
sample_s=10
prepare_soak

connect_rate=$(( (conns + 9) / 10 ))
ramp_s=$(awk -v c="$conns" -v r="$connect_rate" 'BEGIN {printf "%.3f", c / r}')
warmup_s=$(awk -v r="$ramp_s" 'BEGIN {printf "%.3f", 60 - r}')
# Two seconds more than the soak, so the last minute's interval line comes out before the run ends.
duration_s=$((minutes * 60 + 2))

start_kq --workers 2 --protocol echo
sleep 1
rss_base=$(rss_kib); fd_base=$(fd_count)
kb_cmd=("$build/bench/kqbench" -t2 -c"$conns" --connect-rate "$connect_rate" --warmup "${warmup_s}s" --rate "$rate"
        -d "${duration_s}s" --interval 60s --timeout 2s --server-pid "$kq_pid" --json "$work/kb.json" "$kq_host:$kq_port")
"${kb_cmd[@]}" > "$work/kb.out" 2> "$work/kb.err" &
kb=$!
pids+=("$kb")
t0=$SECONDS
echo "soak: $conns connections, $rate req/s, 1 + $minutes min (sampling every ${sample_s}s; progress in $work)" >&2
: > "$work/samples"
while kill -0 "$kb" 2>/dev/null; do
  t=$((SECONDS - t0))
  echo "$t $(rss_kib) $(fd_count) $(metric_sum kqserver_worker_connections_active)" >> "$work/samples"
  sleep "$sample_s"
done
kb_rc=0
wait "$kb" || kb_rc=$?
sleep 2  # the server sees the closes
rss_after=$(rss_kib); fd_after=$(fd_count); active_after=$(metric_sum kqserver_worker_connections_active)
stop_kq && kq_rc=0 || kq_rc=$?

# Post-warm-up samples: from the first measured minute (t >= 60 s) until kqbench began closing.
awk -v end=$((60 + minutes * 60)) '$1 >= 60 && $1 <= end' "$work/samples" > "$work/steady"
read -r rss_first rss_last rss_min rss_max fd_min fd_max fd_first fd_last act_min act_max n_samples < <(awk '
  NR == 1 {rf = $2; ff = $3; rmin = rmax = $2; fmin = fmax = $3; amin = amax = $4}
  {rl = $2; fl = $3; if ($2 < rmin) rmin = $2; if ($2 > rmax) rmax = $2; if ($3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3
   if ($4 < amin) amin = $4; if ($4 > amax) amax = $4}
  END {print rf, rl, rmin, rmax, fmin, fmax, ff, fl, amin, amax, NR}' "$work/steady")
rss_spread=$(awk -v a="$rss_min" -v b="$rss_max" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')
rss_change=$(awk -v a="$rss_first" -v b="$rss_last" 'BEGIN {printf "%+.2f", (b - a) * 100 / a}')

# Interval lines: the first is the warm-up minute, the next ones the measured minutes.
grep '^interval ' "$work/kb.err" | sed 's/[a-z_\/0-9]*=//g; s/^interval //; s/s / /' > "$work/intervals" || true
p99_median=$(awk 'NR > 1 {print $4}' "$work/intervals" | median)
p99_max=$(awk 'NR > 1 && $4 > m {m = $4} END {print m + 0}' "$work/intervals")
minutes_seen=$(awk 'NR > 1' "$work/intervals" | wc -l)

j="$work/kb.json"
sent=$(jqr "$j" .requests.sent); ok=$(jqr "$j" .requests.ok); failed=$(jqr "$j" .requests.failed)
unsent=$(jqr "$j" .requests.unsent); errors=$(jqr "$j" .errors.total)
established=$(jqr "$j" .connections.established); connects=$(jqr "$j" .connections.connects)

verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }
rss_ok() { awk -v s="$rss_spread" 'BEGIN {exit !(s <= 5)}'; }
fd_ok() { [ $((fd_max - fd_min)) -le $((conns / 1000)) ] && [ "$fd_after" -eq "$fd_base" ]; }
p99_ok() { [ "$minutes_seen" -eq "$minutes" ] && awk -v m="$p99_max" -v d="$p99_median" 'BEGIN {exit !(m <= 2 * d)}'; }
clean_ok() { [ "$errors" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$unsent" -eq 0 ] && [ "$kb_rc" -eq 0 ] && [ "$kq_rc" -eq 0 ]; }

cat <<EOF

## Soak: $conns connections, $rate req/s, $minutes min

\`bench/soak.sh $conns $minutes $rate\` on $(nproc) cores, $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
- server: \`kqserver --workers 2 --protocol echo --metrics-port 0 --log-level info $server_extra\` (exit status $kq_rc)
- load: \`kqbench -t2 -c$conns --connect-rate $connect_rate --warmup ${warmup_s}s --rate $rate -d ${duration_s}s --interval 60s --timeout 2s --server-pid PID\`

| | first | last | min | max | change last/first | spread (max-min)/min |
|---|---|---|---|---|---|---|
| RSS KiB (after warm-up, $n_samples samples every ${sample_s}s) | $rss_first | $rss_last | $rss_min | $rss_max | $rss_change% | $rss_spread% |
| open fds | $fd_first | $fd_last | $fd_min | $fd_max | | |
| connections_active | | | $act_min | $act_max | | |

Before the load: RSS $rss_base KiB, $fd_base fds. After kqbench closed its connections: RSS $rss_after KiB, $fd_after fds, $active_after connections active.

| minute | req/s | p50 us | p99 us | max us | errors so far |
|---|---|---|---|---|---|
$(awk 'NR == 1 {printf "| warm-up | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6; next}
       {printf "| %d | %s | %s | %s | %s | %s |\n", NR - 1, $2, $3, $4, $5, $6}' "$work/intervals")

Whole measured window (kqbench): $(grep -E '^  (requests|latency|connections|errors)' "$work/kb.out" | sed 's/^  */; /' | tr -d '\n' | sed 's/^; //')
Server CPU: $(jqr "$j" '.server.cpu_us_per_request // "n/a" | if type == "number" then (. * 10 | round / 10) else . end') us per request (10 ms ticks).
kqbench: $sent sent, $ok ok, $failed failed, $unsent unsent, $errors errors; $established/$conns connections established, $connects connects.

Server exit summary:
\`\`\`
$(exit_summary)
\`\`\`

- RSS flat within 5% (spread $rss_spread%): $(verdict rss_ok)
- no fd growth (post-warm-up fds $fd_min..$fd_max; $fd_after after the close vs $fd_base before): $(verdict fd_ok)
- p99 stable (highest minute ${p99_max} us vs median ${p99_median} us, limit 2x; $minutes_seen/$minutes minutes): $(verdict p99_ok)
- no errors, nothing unsent, clean exits: $(verdict clean_ok)
EOF
