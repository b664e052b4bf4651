#!/bin/bash
# clang-tidy over src/ with the committed .clang-tidy (a small chosen check set; zero
# findings expected). Uses the compile database of BUILD_DIR (default build-tidy, configured
# here with clang so every flag is one clang understands). Exit 0 clean, 1 findings, 77 when
# clang-tidy is missing.
#   tools/tidy.sh [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tidy}
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
runner=$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)
if [ -z "$tidy" ] || [ -z "$runner" ]; then
  echo "tidy: SKIP: clang-tidy not found (apt-get install clang-tidy)"
  exit 77
fi
if [ ! -f "$dir/compile_commands.json" ]; then
  CXX=clang++ meson setup "$dir" -Dtests=false >/dev/null || { echo "tidy: meson setup failed"; exit 1; }
fi
# The compile database is written at setup; the generated header is all a build must add.
ninja -C "$dir" l7gate_version.h >/dev/null 2>&1 || true
files=$(find src -name '*.cpp' | sort)
files=$(for f in $files; do [ -f "$f" ] && echo "$PWD/$f"; done)
log=$dir/tidy.log
start=$(date +%s)
"$runner" -clang-tidy-binary "$tidy" -p "$dir" -j "$(nproc)" -quiet $files >"$log" 2>&1
rc=$?
n=$(grep -cE '(warning|error): .*\[[a-z]' "$log" || true)
echo "tidy: $(echo "$files" | wc -l) files, $n findings, $(( $(date +%s) - start )) s (log: $log)"
if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
  grep -E '(warning|error): ' "$log" | sort -u | head -40
  exit 1
fi
exit 0
