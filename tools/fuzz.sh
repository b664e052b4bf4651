#!/bin/bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/) and runs each: first over its
# committed regression inputs (tests/fuzz/regressions/TARGET/, every crash ever found), then
# fuzzing for a bounded time from its seed corpus (tests/fuzz/corpus/TARGET/).
#
#   tools/fuzz.sh                         every target, 30 s each (what tools/test.sh runs)
#   tools/fuzz.sh --time 3600 worker      one target for an hour
#   tools/fuzz.sh --time 600 --jobs 2     longer runs, two fuzzing processes per target
#   tools/fuzz.sh --regressions           only replay the regression inputs
#   tools/fuzz.sh --results FILE          also append a line per target to FILE (TAB separated:
#                                         fuzz-TARGET, pass|fail|skip, detail), a case each in
#                                         tools/test_summary.py
#
# New inputs found while fuzzing go to build-fuzz/corpus/TARGET (not the committed seeds;
# `tools/fuzz.sh --merge` minimises them into tests/fuzz/corpus). A crash leaves its input in
# build-fuzz/crashes/TARGET/ and fails; commit it under tests/fuzz/regressions/TARGET/ with
# the fix. Exit status: 0 all clean, 1 a crash or a build failure, 77 clang/libFuzzer missing.
set -uo pipefail
cd "$(dirname "$0")/.."

time_s=30
jobs=1
mode=fuzz
targets=()
results=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --regressions) mode=regressions; shift ;;
    --merge) mode=merge; shift ;;
    --results) results=$2; shift 2 ;;
    parser|worker|policy|lists) targets+=("$1"); shift ;;
    *) echo "usage: tools/fuzz.sh [--time S] [--jobs N] [--regressions|--merge] [parser|worker|policy|lists...]" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(parser worker policy lists)
# record TARGET pass|fail|skip DETAIL: one case of the closing line
record() { printf 'fuzz-%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

clangrt=$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if ! command -v clang++ >/dev/null || [ ! -f "$clangrt" ]; then
  echo "fuzz: SKIP: clang++ with libFuzzer not found (apt-get install clang libclang-rt-14-dev)"
  for t in "${targets[@]}"; do record "$t" skip "clang++ with libFuzzer not found"; done
  exit 77
fi

dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CXX=clang++ CXXFLAGS=-fsanitize=fuzzer-no-link meson setup "$dir" --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false -Dtests=false -Dfuzz=true >/dev/null \
    || { echo "fuzz: meson setup failed"; for t in "${targets[@]}"; do record "$t" fail "meson setup failed"; done; exit 1; }
fi
ninja -C "$dir" "${targets[@]/#/tests/fuzz/fuzz_}" >/dev/null || { ninja -C "$dir" "${targets[@]/#/tests/fuzz/fuzz_}" >&2; echo "fuzz: build failed"
  for t in "${targets[@]}"; do record "$t" fail "build failed"; done; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_odr_violation=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for t in "${targets[@]}"; do
  bin=$dir/tests/fuzz/fuzz_$t
  seeds=tests/fuzz/corpus/$t
  regs=tests/fuzz/regressions/$t
  work=$dir/corpus/$t
  crashes=$dir/crashes/$t
  mkdir -p "$work" "$crashes"
  log=$dir/fuzz-$t.log
  if compgen -G "$regs/*" >/dev/null; then
    if ! "$bin" "$regs"/* >"$log.reg" 2>&1; then
      echo "fuzz $t: FAILED on a regression input (log: $log.reg)"
      tail -20 "$log.reg"
      record "$t" fail "a regression input fails (log: $log.reg)"
      status=1
      continue
    fi
    echo "fuzz $t: $(ls "$regs" | wc -l) regression inputs pass"
  fi
  case $mode in
    regressions) record "$t" pass "$(ls "$regs" 2>/dev/null | wc -l) regression inputs"; continue ;;
    merge)
      "$bin" -merge=1 "$seeds" "$work" >"$log" 2>&1 || status=1
      echo "fuzz $t: merged into $seeds ($(ls "$seeds" | wc -l) files)"
      continue ;;
  esac
  args=(-max_total_time="$time_s" -timeout=20 -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1
        -artifact_prefix="$crashes/")
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs")
  fi
  "$bin" "${args[@]}" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
  rate=$(( ${execs:-0} / (time_s > 0 ? time_s : 1) ))
  if [ $rc -ne 0 ]; then
    echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} runs; input in $crashes/ (log: $log)"
    grep -E 'ERROR|SUMMARY|^fuzz_|Test unit written' "$log" | head -10
    record "$t" fail "exit $rc after ${execs:-?} runs; input in $crashes/"
    status=1
  else
    echo "fuzz $t: OK ${time_s} s, ${execs:-?} runs (~$rate/s), $cov"
    record "$t" pass "${time_s} s, ${execs:-?} runs, $cov"
  fi
done
exit $status
