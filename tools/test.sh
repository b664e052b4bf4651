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

# Robustness (not in --quick): a ThreadSanitizer build of the control/worker handoff tests,
# every libFuzzer target for 30 s (ASan+UBSan, plus its committed regression inputs), and
# clang-tidy on src/ with the committed .clang-tidy. Each skips (77) when its tool is missing.
if [ $quick -eq 0 ]; then
  echo "==== tsan (build-tsan: tests/tsan)"
  if [ ! -f build-tsan/build.ninja ]; then
    CXXFLAGS=-DRTE_USE_C11_MEM_MODEL meson setup build-tsan --buildtype=debugoptimized \
      -Db_sanitize=thread -Db_lundef=false >/dev/null
  fi
  if ninja -C build-tsan tests/tsan/tsan_tests >/dev/null &&
     TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --suite tsan --no-rebuild --print-errorlogs; then
    echo "tsan: OK"
  else
    echo "tsan: FAILED"
    status=1
  fi
  for step in "tools/fuzz.sh --time ${L7GATE_FUZZ_TIME:-30}" tools/tidy.sh; do
    echo "==== $step"
    $step
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 77 ] && status=1
  done
fi

# One closing line over every test case of every build (gtest cases counted one by one).
/usr/bin/python3 tools/test_summary.py "${builds[@]/#/build-}" || status=1
exit $status
