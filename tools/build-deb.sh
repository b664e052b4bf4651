#!/bin/bash
# Builds the Debian package l7gate_<version>_amd64.deb from this tree with Debian's own
# tooling (dpkg-buildpackage + debhelper's meson support; debian/ holds the packaging).
#
#   tools/build-deb.sh [OUTDIR]     default OUTDIR: build-deb/ (ignored by git)
#
# The build runs in a copy of the tree in a temporary directory (the files git tracks plus
# new, not ignored ones; every file when this is no git checkout), so the work tree gets no
# build output. The version is meson.build's project() version; debian/changelog must say the
# same (the script stops otherwise). Dependencies are computed by dpkg-shlibdeps (see
# debian/rules for DPDK's plugin drivers). Prints the .deb's path on the last line.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dh meson; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool missing (tools/install-deps.sh installs it)" >&2; exit 1; }
done

version=$(sed -n "s/^  version: '\([^']*\)',\$/\1/p" "$src/meson.build" | head -n1)
[ -n "$version" ] || { echo "build-deb: no version in meson.build's project()" >&2; exit 1; }
deb_version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if [ "$deb_version" != "$version" ]; then
  echo "build-deb: debian/changelog says $deb_version, meson.build says $version;" \
       "add a changelog entry: dch -v $version" >&2
  exit 1
fi

work=$(mktemp -d /tmp/l7gate-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/l7gate-$version"
mkdir -p "$tree"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -xf - -C "$tree"
else
  tar -C "$src" --exclude='./build*' --exclude='./obj-*' --exclude='__pycache__' -cf - . | tar -xf - -C "$tree"
fi

jobs=$(nproc 2>/dev/null || echo 2)
echo "build-deb: building l7gate $version in $tree" >&2
(cd "$tree" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
   dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) || {
  tail -n 60 "$work/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (log above)" >&2
  exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="l7gate_${version}_${arch}.deb"
cp "$work/$deb" "$work"/l7gate_"${version}"_"${arch}".buildinfo "$work"/l7gate_"${version}"_"${arch}".changes "$out"/
cp "$work/build.log" "$out/l7gate_${version}_${arch}.build.log"
echo "$out/$deb"
