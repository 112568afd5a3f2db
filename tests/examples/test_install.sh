#!/usr/bin/env bash
# Installs this build into a fresh prefix, checks what was installed, builds examples/memcache and
# examples/resp against it as separate projects (find_package(kqserver), nothing from the source tree),
# then starts the built kqmemcache on port 0, does set/get through the installed kqcat, and stops it with
# SIGTERM (exit 0).
# Usage: test_install.sh BUILD_DIR EXAMPLES_DIR CMAKE CTEST GENERATOR CXX_COMPILER
set -euo pipefail
build=$1 examples=$2 cmake=$3 ctest=$4 generator=$5 cxx=$6

work=$(mktemp -d "${TMPDIR:-/tmp}/kq-install-test.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
prefix=$work/prefix
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "cmake --install $build --prefix $prefix"
timeout 120 "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "install"; }
for f in bin/kqserver bin/kqcat bin/kqproxy bin/kqmemcache bin/kqresp include/kq/handler.hpp include/kq/server.hpp include/kq/net.hpp \
         include/kq/protocols.hpp include/kq/offload.hpp include/kq/conn_stub.hpp include/kq/worker_config.hpp \
         lib/libkq_common.a lib/libkq_acceptor.a lib/libkq_worker.a \
         lib/libkq_protocols.a lib/libkq_server.a \
         lib/cmake/kqserver/kqserverConfig.cmake lib/cmake/kqserver/kqserverConfigVersion.cmake \
         lib/cmake/kqserver/kqserverTargets.cmake lib/systemd/system/kqserver.service \
         lib/systemd/system/kqserver.socket lib/systemd/system/kqserver-metrics.socket; do
    [[ -e $prefix/$f ]] || fail "not installed: $f"
done
if grep -q "$(cd "$examples/.." && pwd)" "$prefix"/lib/cmake/kqserver/*.cmake; then
    fail "the installed package config refers to the source tree"
fi
timeout 10 "$prefix/bin/kqserver" --help >/dev/null || fail "installed kqserver --help"
timeout 10 "$prefix/bin/kqproxy" --help >/dev/null || fail "installed kqproxy --help"
timeout 10 "$prefix/bin/kqmemcache" --help >/dev/null || fail "installed kqmemcache --help"
timeout 10 "$prefix/bin/kqresp" --help >/dev/null || fail "installed kqresp --help"

step "the installed headers stand alone, and reach no Boost, nlohmann-json or internal header"
for f in worker.hpp acceptor.hpp mailbox.hpp accept_loop.hpp worker_link.hpp; do
    [[ ! -e $prefix/include/kq/$f ]] || fail "internal header installed: include/kq/$f"
done
for h in "$prefix"/include/kq/*.hpp; do
    # -H lists every header the compiler opens; only the installed ones and the system's may appear.
    "$cxx" -std=c++20 -fsyntax-only -H -I "$prefix/include" -x c++ "$h" 2> "$work/trace" \
        || { cat "$work/trace"; fail "$(basename "$h") does not compile on its own"; }
    if grep -E 'boost/|nlohmann/|http_parser' "$work/trace" >/dev/null; then
        grep -E 'boost/|nlohmann/|http_parser' "$work/trace" | head -3
        fail "$(basename "$h") includes a header the package does not promise"
    fi
done
if grep -n 'find_dependency(Boost\|Boost::\|nlohmann' "$prefix"/lib/cmake/kqserver/*.cmake; then
    fail "the package config asks for Boost or nlohmann-json"
fi

# Each example is a project of its own: find_package(kqserver) from the new install, nothing from the
# source tree.
for name in memcache resp; do
    step "configure and build examples/$name against $prefix"
    timeout 300 "$cmake" -S "$examples/$name" -B "$work/$name" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_PREFIX_PATH="$prefix" >"$work/$name-configure.log" 2>&1 \
        || { cat "$work/$name-configure.log"; fail "configure examples/$name"; }
    found=$(sed -n 's/^kqserver_DIR:PATH=//p' "$work/$name/CMakeCache.txt")
    [[ $found == "$prefix/lib/cmake/kqserver" ]] || fail "find_package(kqserver) found '$found', not the new install"
    timeout 600 "$cmake" --build "$work/$name" >"$work/$name-build.log" 2>&1 \
        || { cat "$work/$name-build.log"; fail "build examples/$name"; }
done
timeout 10 "$work/resp/kqresp" --help >/dev/null || fail "standalone kqresp --help"

step "run the standalone kqmemcache, set and get through the installed kqcat, SIGTERM"
mkfifo "$work/out"
"$work/memcache/kqmemcache" --port 0 --workers 2 >"$work/out" 2>"$work/server.log" &
server_pid=$!
exec 3<"$work/out"
read -r -t 10 word address <&3 || fail "no listening line from kqmemcache"
[[ $word == listening ]] || fail "unexpected first line: $word $address"
port=${address##*:}
replies=$(printf 'set greeting 5 0 11\r\nhello world\r\nget greeting\r\ndelete greeting\r\nget greeting\r\n' \
    | timeout 10 "$prefix/bin/kqcat" --timeout 5 127.0.0.1 "$port" | tr -d '\r') || fail "kqcat exited with $?"
expected=$'STORED\nVALUE greeting 5 11\nhello world\nEND\nDELETED\nEND'
[[ $replies == "$expected" ]] || fail "replies were: $replies"

kill -TERM "$server_pid"
status=0
timeout 10 tail --pid="$server_pid" -f /dev/null || fail "kqmemcache did not exit within 10 s of SIGTERM"
wait "$server_pid" || status=$?
server_pid=
[[ $status -eq 0 ]] || { cat "$work/server.log"; fail "kqmemcache exited with status $status"; }
echo "ok: installed to $prefix, examples built, kqmemcache served and stopped cleanly"
