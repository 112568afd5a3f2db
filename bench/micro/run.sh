#!/bin/sh
# Runs every micro-benchmark in kq_micro: the console table on stdout, and the same run as JSON
# (Google Benchmark's format, with the machine's context) for docs/performance.md and comparisons.
# Usage: bench/micro/run.sh BUILD_DIR [Google Benchmark flags...]
#   JSON goes to $KQ_MICRO_JSON, default BUILD_DIR/kq_micro.json. Later flags override the defaults,
#   e.g. --benchmark_filter=Poller or --benchmark_repetitions=5 (medians help on a noisy machine).
set -eu

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR [benchmark flags...]" >&2
    exit 2
fi
build=$1
shift
bin=$build/bench/kq_micro
if [ ! -x "$bin" ]; then
    echo "$0: $bin not found: build it with cmake --build $build --target kq_micro" >&2
    exit 2
fi
json=${KQ_MICRO_JSON:-$build/kq_micro.json}

"$bin" --benchmark_min_time=0.2 --benchmark_format=console \
    --benchmark_out="$json" --benchmark_out_format=json "$@"
echo "JSON: $json" >&2
