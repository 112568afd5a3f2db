#!/usr/bin/env bash
# Installs the Debian packages kqserver builds and tests with (--build-only: builds and packages with);
# does nothing when all are present. Further arguments name extra packages.
set -euo pipefail

# What building and packaging need (the Dockerfile's build stage installs only these: --build-only).
build_packages=(
  cmake ninja-build g++ pkg-config                  # build
  libboost-dev libspdlog-dev libcli11-dev           # Boost.Lockfree, logging, command lines
  nlohmann-json3-dev                                # JSON reports
  help2man                                          # man pages from --help (cmake/KqManPages.cmake)
  dpkg-dev file                                     # cpack -G DEB: dpkg-shlibdeps computes Depends
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev        # tests and micro-benchmarks
  liburing-dev                                      # bench/floor: the io_uring floor reference
  curl apache2-utils wrk nghttp2-client chromium    # real HTTP clients the tests drive
  nginx-light                                       # the HTTP peer of tests/http/http_conformance
  haproxy iproute2 socat                            # bench/cluster (tests/cluster): the load balancer, ip netns,
                                                    # HAProxy's runtime API (--drain-one)
  memcached libmemcached-tools                      # examples/memcache: the peer, memccapable and its clients
  redis-server redis-tools                          # examples/resp: the peer, redis-cli and redis-benchmark
  jq gnuplot-nox                                    # bench/sweep: its JSON and plots (tested)
  clang-14 libclang-rt-14-dev llvm-14               # fuzz/: clang, its libFuzzer runtime, symbolizer
  clang-format-14                                   # the style check (.clang-format)
  systemd                                           # systemd-socket-activate, systemd-analyze (deploy tests)
)
if [ "${1-}" = --build-only ]; then
  shift
  packages=("${build_packages[@]}")
else
  packages=("${build_packages[@]}" "${test_packages[@]}")
fi
packages+=("$@")                                  # extra ones a caller needs (bench scripts)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
