#!/bin/bash
# Builds and runs the microbenchmarks (perf/micro/, Google Benchmark) pinned to core 1.
#   perf/micro.sh [--no-build] [Google Benchmark options, e.g. --benchmark_filter=Lookup]
# Default options: 5 repetitions, aggregates (mean, median, stddev, cv) only.
# Uses build/perf/micro_bench (the top-level meson.build has subdir('perf')); in a build
# configured without it, it compiles the data-plane benchmarks (parser, flow table) by hand
# against build/libl7gate_dp.a (meson's release flags: -std=c++20 -O3 -DNDEBUG
# -fno-strict-aliasing, DPDK's -march=corei7).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
if [ "${1:-}" = "--no-build" ]; then
  build=0
  shift
fi
if [ "$build" = 1 ]; then
  builddir=$(tools/build.sh release | tail -n 1)
else
  builddir=build
fi
if [ -f "$builddir/build.ninja" ] && grep -q 'perf/micro_bench' "$builddir/build.ninja"; then
  [ "$build" = 0 ] || ninja -C "$builddir" perf/micro_bench >/dev/null
  exe=$builddir/perf/micro_bench
else
  pkg-config --exists benchmark || { echo "perf/micro.sh: apt-get install libbenchmark-dev" >&2; exit 2; }
  exe=$builddir/perf-micro/micro_bench
  mkdir -p "$builddir/perf-micro"
  if [ "$build" = 1 ] || [ ! -x "$exe" ]; then
    # shellcheck disable=SC2046
    g++ -std=c++20 -O3 -DNDEBUG -fno-strict-aliasing -Wall -Wextra -Werror -Isrc -Iperf/micro \
      $(pkg-config --cflags libdpdk libndpi benchmark) perf/micro/main.cpp \
      perf/micro/bench_parser.cpp perf/micro/bench_flow_table.cpp "$builddir/libl7gate_dp.a" \
      $(pkg-config --libs libdpdk libndpi libhs libgcrypt benchmark) -lpthread -o "$exe"
  fi
fi
if [ $# -eq 0 ]; then
  set -- --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
fi
exec taskset -c 1 "$exe" "$@"
