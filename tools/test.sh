#!/bin/bash
# Installs what is missing, builds (release and ASan+UBSan), and runs every test with
# `meson test` in both builds. Ends with one line: "N passed, N failed, N skipped".
#   tools/test.sh            everything
#   tools/test.sh --quick    release build only
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

tools/install-deps.sh || exit 1

# DPDK's EAL wants a little shared memory and a runtime dir; tests use --no-huge.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_odr_violation=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

builds=(release)
[ $quick -eq 0 ] && builds+=(asan)

status=0
for kind in "${builds[@]}"; do
  echo "==== build: $kind"
  if ! dir=$(tools/build.sh "$kind"); then
    echo "build $kind failed"
    status=1
    continue
  fi
  echo "==== meson test: $dir"
  if ! meson test -C "$dir" --print-errorlogs --num-processes 1; then
    status=1
  fi
done

# The instruction budget of the per-packet path (deterministic, unlike timings): fails when
# it grew more than 10% over perf/callgrind-budget.txt.
if [ $quick -eq 0 ]; then
  echo "==== callgrind budget (perf/callgrind.sh --mix established)"
  if perf/callgrind.sh --no-build --mix established; then
    echo "callgrind budget: OK"
  else
    echo "callgrind budget: FAILED"
    status=1
  fi
fi

# One closing line over every test case of every build (gtest cases counted one by one).
/usr/bin/python3 tools/test_summary.py "${builds[@]/#/build-}" || status=1
exit $status
