#!/bin/bash
# Installs what is missing, builds (release and ASan+UBSan), runs every test with `meson test`
# in both builds, then the instruction budgets, a ThreadSanitizer build, the fuzz targets and
# clang-tidy. Ends with one line over every test case: "N passed, N failed, N skipped"
# (tools/test_summary.py: each GoogleTest case, Python unittest case, callgrind budget, fuzz
# target and clang-tidy counted once; skipped cases listed with their reasons).
#   tools/test.sh            everything
#   tools/test.sh --quick    release build only
#
# Under CI=true as root a skipped case fails the run unless it is on the allow-list below. The
# ndpiReader agreement on real captures runs when ../shared/pcaps (or $L7GATE_PCAPS) holds them
# with their reference/ results, and its figure is printed before the closing line.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
start=$(date +%s)
# Each step's header says when it started (seconds since the start): where the 30 minutes go.
step() { echo "==== $* (at $(( $(date +%s) - start )) s)"; }

tools/install-deps.sh || exit 1

if [ -z "${L7GATE_PCAPS:-}" ] && [ -d ../shared/pcaps/reference ]; then
  L7GATE_PCAPS=$(cd ../shared/pcaps && pwd)
fi
[ -n "${L7GATE_PCAPS:-}" ] && export L7GATE_PCAPS

# Skips that CI accepts (CI=true, root), as BUILD/TEST/CASE patterns of tools/test_summary.py.
# Any other skipped case is a failure there.
allow_skip=(
  # The live tests forward real TCP/UDP sessions through busy-polling workers with timing
  # checks; the ASan build's workers are several times slower, so they run in release only.
  'build-asan/live-*'
  # The Debian package is built from the release build only (a sanitizer build is no product).
  'build-asan/package/*'
  # Counting allocations interposes malloc, which the sanitizer runtime owns: release only.
  'build-asan/eal/WorkerAlloc.*'
  # dpdk-dumpcap is an unsanitized secondary process that must map the ASan primary's memory at
  # the same addresses; under ASan that fails now and then. The release build runs the test.
  'build-asan/pdump/*'
)
if [ -z "${L7GATE_PCAPS:-}" ]; then
  # A clone without the workplace's ../shared captures: the agreement test has nothing to read.
  allow_skip+=('build*/classify/*T3SharedCapturesTest*')
fi

# DPDK's EAL wants a little shared memory and a runtime dir; tests use --no-huge (test_pdump
# mounts hugetlbfs and reserves pages for its run itself, and puts both back).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_odr_violation=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Cases run outside meson (budgets, fuzz targets, clang-tidy): one line each, see test_summary.py.
results=$(mktemp /tmp/l7gate-test-results.XXXXXX)
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

builds=(release)
[ $quick -eq 0 ] && builds+=(asan)

# Time on two cores: the steps that keep one core busy run beside others. The benchmark
# captures the callgrind step replays (scapy, about 3 minutes of one core) are made while the
# ASan build compiles, and callgrind (valgrind runs one thread at a time) runs while the TSan
# build, the fuzz targets and clang-tidy take the other core. Timing-sensitive tests (the
# meson suites) never share the machine with them.
logs=$(mktemp -d /tmp/l7gate-test-logs.XXXXXX)
trap 'rm -f "$results"; rm -rf "$logs"' EXIT
traffic_pid=
status=0
dirs=()
for kind in "${builds[@]}"; do
  step "build: $kind"
  if [ "$kind" = asan ]; then
    echo "(benchmark captures for the callgrind step: perf/traffic.sh, beside the build)"
    perf/traffic.sh established >"$logs/traffic.log" 2>&1 &
    traffic_pid=$!
  fi
  if ! dir=$(tools/build.sh "$kind"); then
    echo "build $kind failed"
    record "build-$kind" fail "tools/build.sh $kind failed"
    status=1
    continue
  fi
  if [ -n "$traffic_pid" ]; then
    wait "$traffic_pid"  # the tests below run alone
    traffic_rc=$?
    traffic_pid=
  fi
  dirs+=("$dir")
  rm -rf "$dir/meson-logs/cases"
  step "meson test: $dir"
  if ! meson test -C "$dir" --print-errorlogs --num-processes 1; then
    status=1
  fi
done
if [ -n "$traffic_pid" ]; then  # the ASan build failed before the wait
  wait "$traffic_pid"
  traffic_rc=$?
fi

if [ $quick -eq 0 ]; then
  # The instruction budgets of the whole worker loop per packet (Worker::run: RX to TX,
  # housekeeping and expiry, flow ends and their records, nDPI give-up, shaper drain), every
  # mix, deterministic unlike timings (so the other core's load does not change them): more
  # than 3% over a budget in perf/callgrind-budget.txt, or a missing key, fails.
  callgrind_pid=
  if [ "${traffic_rc:-1}" -ne 0 ]; then
    step "callgrind budgets: the benchmark captures could not be made"
    tail -20 "$logs/traffic.log"
    record callgrind fail "perf/traffic.sh failed (its output is above)"
    status=1
  else
    step "callgrind budgets (perf/callgrind.sh --mix all, beside the steps below)"
    perf/callgrind.sh --no-build --mix all --results "$logs/callgrind.tsv" >"$logs/callgrind.log" 2>&1 &
    callgrind_pid=$!
  fi

  # Robustness: a ThreadSanitizer build of the control/worker handoff tests, every libFuzzer
  # target for 30 s (ASan+UBSan, plus its committed regression inputs), and clang-tidy on src/
  # with the committed .clang-tidy.
  step "tsan (build-tsan: tests/tsan)"
  if [ ! -f build-tsan/build.ninja ]; then
    CXXFLAGS=-DRTE_USE_C11_MEM_MODEL meson setup build-tsan --buildtype=debugoptimized \
      -Db_sanitize=thread -Db_lundef=false >/dev/null
  fi
  rm -f build-tsan/meson-logs/testlog.json
  if ninja -C build-tsan tests/tsan/tsan_tests >/dev/null &&
     TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --suite tsan --no-rebuild --print-errorlogs; then
    echo "tsan: OK"
  else
    echo "tsan: FAILED"
    status=1
  fi
  dirs+=(build-tsan)
  step "tools/fuzz.sh --time ${L7GATE_FUZZ_TIME:-30}"
  tools/fuzz.sh --time "${L7GATE_FUZZ_TIME:-30}" --results "$results"
  rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && status=1
  step "tools/tidy.sh"
  tools/tidy.sh
  case $? in
    0) record clang-tidy pass "no findings" ;;
    77) record clang-tidy skip "clang-tidy not found" ;;
    *) record clang-tidy fail "findings (build-tidy/tidy.log)"; status=1 ;;
  esac

  if [ -n "$callgrind_pid" ]; then
    wait "$callgrind_pid"
    rc=$?
    step "callgrind budgets (perf/callgrind.sh --mix all): output"
    grep -v '^callgrind: ' "$logs/callgrind.log"
    if [ $rc -eq 0 ]; then
      echo "callgrind budgets: OK"
    else
      echo "callgrind budgets: FAILED"
      grep -q '^callgrind-' "$logs/callgrind.tsv" 2>/dev/null ||
        record callgrind fail "perf/callgrind.sh failed before measuring (its output is above)"
      status=1
    fi
    cat "$logs/callgrind.tsv" >>"$results" 2>/dev/null
  fi
fi

echo "==== summary ($(( ($(date +%s) - start) / 60 )) min)"
ci=()
if [ "${CI:-}" = true ] && [ "$(id -u)" -eq 0 ]; then
  ci=(--ci)
  for p in "${allow_skip[@]}"; do ci+=(--allow-skip "$p"); done
fi
/usr/bin/python3 tools/test_summary.py "${ci[@]}" --results "$results" "${dirs[@]}" || status=1
exit $status
