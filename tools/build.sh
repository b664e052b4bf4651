#!/bin/bash
# Configures (once) and builds one build directory.
#   tools/build.sh [release|asan]   -> build/ or build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build; opts=(--buildtype=release) ;;
  # -O1 with line tables only (-g1): the sanitizers' usual setting, enough for symbolized
  # reports, and about a third of the compile time of -O2 -g (the ASan build was the longest
  # step of tools/test.sh).
  asan) dir=build-asan; opts=(--buildtype=plain -Doptimization=1 -Ddebug=false -Dc_args=-g1 -Dcpp_args=-g1
                             -Db_sanitize=address,undefined -Db_lundef=false -Dmicro=false) ;;
  *) echo "usage: tools/build.sh [release|asan]" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "${opts[@]}" >/dev/null || { meson setup --wipe "$dir" "${opts[@]}" >&2; exit 1; }
fi
# Quiet when it works; on failure the compiler's messages go to stderr (stdout is the
# directory name callers capture).
ninja -C "$dir" >/dev/null || ninja -C "$dir" >&2
echo "$dir"
