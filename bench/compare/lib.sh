#!/usr/bin/env bash
# Shared pieces of the comparison scripts: build, start/stop kqserver and nginx on loopback, read a
# process tree's CPU time from /proc, and take medians. Sourced, not run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${KQ_BUILD:-$root/build/release}
work=$(mktemp -d /tmp/kqcompare.XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
ulimit -n 20000

prepare() {
  "$root/scripts/install-deps.sh" wrk nginx-light apache2-utils procps strace
  "$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Release -DKQ_TESTS=OFF -DKQ_MICROBENCH=OFF
}

pids=()
stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}

# start_listening NAME CMD...: starts a server on the library (any binary that prints "listening
# HOST:PORT"), stdout in $work/NAME.out, stderr in $work/NAME.err, and waits for that line; exits with
# its stderr if it dies first. Sets started_pid.
start_listening() {
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
  until grep -q listening "$work/$name.out" 2>/dev/null; do
    kill -0 "$started_pid" 2>/dev/null || { cat "$work/$name.err" >&2; exit 1; }
    sleep 0.05
  done
}

# start_kqserver PORT ARGS... : prints nothing; sets kq_pid.
start_kqserver() {
  local port=$1; shift
  start_listening "kq.$port" "$build/server/kqserver" --port "$port" --log-level warn "$@"
  kq_pid=$started_pid
}

# start_nginx PORT WORKERS BODY [LISTEN_FLAGS]: `return 200` with BODY, access_log off; sets ngx_pid (the
# master). LISTEN_FLAGS are added to the listen directive (e.g. deferred). Several may run at once.
start_nginx() {
  local port=$1 workers=$2 body=$3 flags=${4:-}
  local dir="$work/ngx.$port"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port backlog=4096 $flags;
    location / { default_type text/plain; return 200 "$body"; }
  }
}
CONF
  nginx -c "$dir/nginx.conf" &
  ngx_pid=$!
  pids+=("$ngx_pid")
  until curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do sleep 0.05; done
}

# cpu_user_sys PID: "USER SYSTEM" clock ticks of PID and all its children processes (nginx workers).
cpu_user_sys() {
  local user=0 sys=0 p u s
  for p in $1 $(pgrep -P "$1" || true); do
    read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat")
    user=$((user + u)); sys=$((sys + s))
  done
  echo "$user $sys"
}
# cpu_ticks PID: their sum.
cpu_ticks() { local u s; read -r u s < <(cpu_user_sys "$1"); echo $((u + s)); }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# wrk_rps FILE / wrk_lat FILE PCT: figures from wrk --latency output, latencies in microseconds.
wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
to_us() { awk '{v=$1; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v); m=(u=="us")?1:(u=="ms")?1000:(u=="s")?1e6:1; print v*m}'; }
wrk_lat() { awk -v p="$2%" '$1==p {print $2}' "$1" | to_us; }
