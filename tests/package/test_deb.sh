#!/usr/bin/env bash
# The .deb (cmake/KqPackage.cmake): cpack builds it from this build tree (no new build), its control
# fields and files are what a package needs, and it serves once unpacked into a temporary root: the
# installed kqserver, started the way the installed kqserver.service's ExecStart says, behind
# systemd-socket-activate with the unit's sockets (and their names) on free ports, answers HTTP and /health.
# Nothing is installed on this machine (dpkg -x, not dpkg -i).
# Usage: test_deb.sh BUILD_DIR CPACK VERSION MAN_PAGES(ON|OFF) CMAKE
set -euo pipefail
build=$1 cpack=$2 version=$3 man_pages=$4 cmake=$5
for tool in dpkg-deb dpkg-shlibdeps systemd-socket-activate curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool is not installed (Debian packages dpkg, dpkg-dev, systemd, curl)"
        exit 77
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kq-deb-test.XXXXXX")
activator_pid=
cleanup() {
    if [[ -n $activator_pid ]]; then kill -KILL "$activator_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# wait_for FILE REGEX SECONDS: poll FILE (a process's output) until a line matches, or fail after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $3))
    until grep -qE "$2" "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

step "cpack -G DEB from $build"
start=$SECONDS
timeout 120 "$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack"; }
debs=("$work"/out/kqserver_"$version"_*.deb)
[[ -f ${debs[0]} ]] || { cat "$work/cpack.log"; ls "$work/out"; fail "no kqserver_${version}_ARCH.deb"; }
deb=${debs[0]}
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes, cpack took $((SECONDS - start)) s"

step "control fields (dpkg-deb -I)"
dpkg-deb -I "$deb" >"$work/info"
cat "$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == kqserver ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), not the project's $version"
[[ $(field Architecture) == "$(dpkg --print-architecture)" ]] || fail "Architecture: $(field Architecture)"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
[[ -n $(field Description) ]] || fail "no Description"
# dpkg-shlibdeps ran: every binary links the C library, so libc6 must be among the dependencies.
[[ $(field Depends) == *libc6* ]] || fail "Depends lacks libc6 (did dpkg-shlibdeps run?): '$(field Depends)'"
for script in postinst prerm postrm; do
    grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " "$work/info" || fail "no executable $script"
done

step "files (dpkg-deb -c)"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$work/files"
expected=(/usr/bin/kqserver /usr/bin/kqbench /usr/bin/kqcat /usr/bin/kqproxy /usr/bin/kqmemcache /usr/bin/kqresp
          /lib/systemd/system/kqserver.service /lib/systemd/system/kqserver.socket
          /lib/systemd/system/kqserver-metrics.socket /usr/include/kq/handler.hpp /usr/include/kq/server.hpp
          /usr/include/kq/app.hpp /usr/share/doc/kqserver/handler-api.md)
if [[ $man_pages == ON ]]; then
    for b in kqserver kqbench kqcat kqproxy kqmemcache kqresp; do expected+=("/usr/share/man/man1/$b.1.gz"); done
fi
for f in "${expected[@]}"; do grep -qx "$f" "$work/files" || fail "not in the package: $f"; done
# The library directory is lib or lib/MULTIARCH, as GNUInstallDirs chose for the configured prefix.
for f in libkq_common.a libkq_server.a cmake/kqserver/kqserverConfig.cmake cmake/kqserver/kqserverTargets.cmake; do
    grep -qE "^/usr/lib/([^/]+/)?$f\$" "$work/files" || fail "not in the package: /usr/lib/.../$f"
done
if grep -vE '^/(usr|lib)(/|$)' "$work/files"; then fail "files outside /usr and /lib (above)"; fi
grep -q '/build' "$work/files" && fail "a build directory was packaged: $(grep '/build' "$work/files" | head -1)"

step "unpack into a temporary root (dpkg -x)"
root=$work/root
dpkg -x "$deb" "$root"
if [[ $man_pages == ON ]]; then
    gzip -dc "$root/usr/share/man/man1/kqserver.1.gz" | grep -q 'metrics\\-port' ||
        fail "kqserver.1 does not document --metrics-port"
fi
for b in kqserver kqbench kqcat; do
    timeout 10 "$root/usr/bin/$b" --help >/dev/null || fail "the installed $b --help"
done

# The packaged CMake package is found where it was unpacked (configure only: test_install builds).
step "find_package(kqserver $version) from the unpacked root"
mkdir "$work/consumer"
printf '%s\n' 'cmake_minimum_required(VERSION 3.22)' 'project(consumer LANGUAGES CXX)' \
    "find_package(kqserver $version EXACT REQUIRED)" 'message(STATUS "found ${kqserver_DIR}")' \
    >"$work/consumer/CMakeLists.txt"
timeout 60 "$cmake" -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$root/usr" \
    >"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; fail "find_package(kqserver) in the unpacked root"; }
grep -q "found $root/usr/lib/" "$work/consumer.log" || { cat "$work/consumer.log"; fail "found another kqserver"; }

step "start the installed kqserver as the installed units say"
units=$root/lib/systemd/system
exec_line=$(sed -n 's/^ExecStart=//p' "$units/kqserver.service")
read -r -a exec_args <<<"$exec_line"
[[ ${exec_args[0]} == /usr/bin/kqserver ]] || fail "ExecStart runs ${exec_args[0]}, not the package's /usr/bin/kqserver"
exec_args[0]=$root${exec_args[0]}
# The sockets the service is handed, in the order of Sockets=, each named by its FileDescriptorName
# (systemd's default: the unit's name); each gets a free loopback port instead of its ListenStream.
read -r -a sockets <<<"$(sed -n 's/^Sockets=//p' "$units/kqserver.service")"
((${#sockets[@]} > 0)) || fail "kqserver.service names no Sockets="
names=()
for s in "${sockets[@]}"; do
    [[ -f $units/$s ]] || fail "Sockets= names $s, which the package does not ship"
    name=$(sed -n 's/^FileDescriptorName=//p' "$units/$s")
    names+=("${name:-$s}")
done
fdnames=$(IFS=:; echo "${names[*]}")

# systemd-socket-activate binds the ports itself; a port taken meanwhile makes it exit, and another is tried.
# The ports come from below the ephemeral range: there, the thousands of client sockets (and port-0
# listeners) of the tests running beside this one made every attempt collide (EADDRINUSE on listen).
read -r ephemeral_low ephemeral_high < /proc/sys/net/ipv4/ip_local_port_range
free_port() {  # below the ephemeral range, else above it, else anywhere (then only the retries help)
    if ((ephemeral_low > 2048)); then echo $((1024 + RANDOM % (ephemeral_low - 1024)))
    elif ((ephemeral_high < 64535)); then echo $((ephemeral_high + 1 + RANDOM % (65535 - ephemeral_high)))
    else echo $((1024 + RANDOM % 64000)); fi
}
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    ports=() listen=()
    for _ in "${sockets[@]}"; do
        ports+=($(free_port))
        listen+=(-l "127.0.0.1:${ports[-1]}")
    done
    systemd-socket-activate "${listen[@]}" "--fdname=$fdnames" "${exec_args[@]}" \
        >"$work/stdout" 2>"$work/stderr" &
    activator_pid=$!
    deadline=$((SECONDS + 10))
    until [[ $(grep -c "^Listening on " "$work/stderr" 2>/dev/null) -eq ${#sockets[@]} ]] || ! kill -0 "$activator_pid" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "systemd-socket-activate did not listen: $(cat "$work/stderr")"
        sleep 0.05
    done
    kill -0 "$activator_pid" 2>/dev/null && break
    wait "$activator_pid" || true
    activator_pid=
done
[[ -n $activator_pid ]] || fail "systemd-socket-activate could not bind: $(cat "$work/stderr")"
port=${ports[0]}

step "a request on the service socket (127.0.0.1:$port) starts it and is answered"
status=$(timeout 15 curl -s -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/") ||
    fail "curl: $(cat "$work/stderr")"
[[ $status == 200 ]] || fail "GET / answered $status: $(cat "$work/stderr")"
[[ -s $work/body ]] || fail "GET / had an empty body"
wait_for "$work/stdout" "^listening 127\.0\.0\.1:$port\$" 10 || fail "no listening line: $(cat "$work/stdout" "$work/stderr")"
[[ $(readlink "/proc/$activator_pid/exe") == "$root/usr/bin/kqserver" ]] ||
    fail "the process serving is $(readlink "/proc/$activator_pid/exe"), not the unpacked kqserver"
grep -q '(socket activation)' "$work/stderr" || fail "kqserver did not take the inherited socket: $(cat "$work/stderr")"

for i in "${!names[@]}"; do
    [[ ${names[i]} == metrics ]] || continue
    step "/health and /ready on the metrics socket (127.0.0.1:${ports[i]})"
    [[ $(timeout 10 curl -s "http://127.0.0.1:${ports[i]}/health") == ok ]] || fail "/health did not answer ok"
    [[ $(timeout 10 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[i]}/ready") == 200 ]] ||
        fail "/ready did not answer 200"
done

step "SIGTERM: the server drains and exits 0"
kill -TERM "$activator_pid"
timeout 15 tail --pid="$activator_pid" -f /dev/null || fail "kqserver did not exit within 15 s of SIGTERM"
status=0
wait "$activator_pid" || status=$?
activator_pid=
[[ $status -eq 0 ]] || fail "kqserver exited with status $status: $(cat "$work/stderr")"
echo "ok: $(basename "$deb") built, inspected, unpacked and served"
