#!/usr/bin/env bash
# User-space instructions per keep-alive HTTP request, kqserver against nginx, counted by callgrind
# (repeatable, unlike time): each server runs under valgrind with one worker, kqbench sends SMALL then
# LARGE requests on 20 keep-alive connections in two fresh runs, and the difference of the two totals
# divided by LARGE - SMALL is the cost of one request, start-up and shutdown cancelled out. Counts every
# instruction of the server's processes in user space (parser, routing, response, event loop, libc).
# Usage: bench/compare/instructions.sh [SMALL] [LARGE]   (defaults: 2000, 12000)
source "$(dirname "$0")/lib.sh"
small=${1:-2000}
large=${2:-12000}
prepare
"$root/scripts/install-deps.sh" valgrind

# total_ir DIR: the sum of the callgrind totals of every process that wrote a file into DIR.
total_ir() { cat "$1"/cg.* | awk '/^summary:/ {s += $2} END {print s}'; }

# kq_run N: kqserver --protocol http --workers 1 under callgrind, N requests; prints its instructions.
kq_run() {
  local out="$work/kq.$1"
  mkdir -p "$out"
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$build/server/kqserver" --port 18097 \
    --protocol http --workers 1 --log-level warn > "$work/kqcg.out" 2>/dev/null &
  local pid=$!
  until grep -q listening "$work/kqcg.out" 2>/dev/null; do sleep 0.1; done
  "$build/bench/kqbench" -t1 -c20 -n "$1" http://127.0.0.1:18097/ > /dev/null
  kill -TERM "$pid"; wait "$pid" || true
  total_ir "$out"
}

# ngx_run N: nginx (one process serving, master_process off, the same 20-byte body) under callgrind.
ngx_run() {
  local out="$work/ngx.$1" dir="$work/ngxconf.$1"
  mkdir -p "$out" "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:18098;
    location / { default_type text/plain; return 200 "Hello from kqserver\n"; }
  }
}
CONF
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" nginx -c "$dir/nginx.conf" 2>/dev/null &
  local pid=$!
  until curl -s -o /dev/null http://127.0.0.1:18098/ 2>/dev/null; do sleep 0.2; done
  "$build/bench/kqbench" -t1 -c20 -n "$1" http://127.0.0.1:18098/ > /dev/null
  kill -QUIT "$pid"; wait "$pid" || true
  total_ir "$out"
}

# The probe curl of ngx_run is one request more in both runs: it cancels out.
kq_small=$(kq_run "$small"); kq_large=$(kq_run "$large")
ngx_small=$(ngx_run "$small"); ngx_large=$(ngx_run "$large")
awk -v ks="$kq_small" -v kl="$kq_large" -v ns="$ngx_small" -v nl="$ngx_large" -v n=$((large - small)) 'BEGIN {
  kq = (kl - ks) / n; ngx = (nl - ns) / n
  printf "user-space instructions per request: kqserver %.0f, nginx %.0f (kqserver/nginx %.2f)\n", kq, ngx, kq / ngx
}'
