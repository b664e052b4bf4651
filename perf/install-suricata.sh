#!/bin/bash
# Installs Suricata 7 from Debian's bookworm-backports, for perf/ only (the peer benchmark:
# perf/run.sh --peers suricata). The product never uses it and the Debian package does not
# depend on it.
#
# - bookworm-backports is added as an apt source; its default pin (100) means apt takes
#   nothing from it unless asked, so only the two packages named below come from it:
#   suricata and the libhtp2 it needs (>= 0.5.50, bookworm has 0.5.42). DPDK, nDPI and
#   Hyperscan stay bookworm's (Suricata 7.0.10 there is built against the same DPDK 22.11).
# - The package's service must not start: on a benchmark box a Suricata sniffing the default
#   interface would take a core. A policy-rc.d denies service starts for the install, and the
#   unit is disabled afterwards (no start at boot).
# Idempotent; prints the installed version.
set -euo pipefail
want_major=7
have=$(dpkg-query -W -f='${Status} ${Version}' suricata 2>/dev/null || true)
if [[ "$have" == "install ok installed 1:${want_major}."* ]]; then
  echo "install-suricata: suricata ${have##* } present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-suricata: suricata $want_major is not installed; run as root to install it" >&2
  exit 1
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "install-suricata: made for Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}" >&2
  exit 1
fi
list=/etc/apt/sources.list.d/l7gate-perf-backports.list
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$list"
  echo "install-suricata: added $list (pin 100: nothing is taken from it unless named)"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  own_policy=1
fi
rc=0
apt-get install -y -q --no-install-recommends \
  suricata/bookworm-backports libhtp2/bookworm-backports || rc=$?
[ "$own_policy" = 1 ] && rm -f "$policy"
[ "$rc" = 0 ] || exit "$rc"
# Not at boot either (systemctl disable works without a running systemd too).
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable suricata.service >/dev/null 2>&1 || true
  [ -d /run/systemd/system ] && systemctl stop suricata.service >/dev/null 2>&1 || true
fi
# Some postinst paths start it through the init script whatever policy-rc.d says.
pkill -x Suricata-Main 2>/dev/null || true
pkill -x suricata 2>/dev/null || true
echo "install-suricata: $(suricata -V 2>&1 | head -n 1)"
