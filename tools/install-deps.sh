#!/bin/bash
# Installs every Debian 12 package l7gate needs to build, test and demo. Idempotent: it
# asks apt only for what is missing, and runs `apt-get update` only when it must install.
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config
  # libraries (linked through pkg-config)
  dpdk-dev libdpdk-dev dpdk libndpi-dev libgcrypt20-dev libhyperscan-dev libmaxminddb-dev
  libyaml-cpp-dev prometheus-cpp-dev googletest libgtest-dev libgmock-dev libpcap-dev
  libbenchmark-dev libedit-dev
  # tests: traffic generator (python3-cryptography: QUIC/X.509 in the l7 set), sanitizer
  # runtime, ndpiReader (the reference classifier the classification tests compare with)
  python3 python3-scapy python3-cryptography libndpi-bin
  # tests: a real Prometheus server scrapes l7gate's metrics; valgrind counts instructions
  # per packet against perf/callgrind-budget.txt
  prometheus valgrind
)
# tests/live (tools/netlab.sh): real servers and clients in network namespaces around l7gate
# on af_packet vdevs (nginx, openssl s_server, dnsmasq, sshd, iperf3; curl, dig, ssh)
PKGS+=(iproute2 ethtool openssl curl nginx-light dnsmasq-base openssh-server openssh-client
  iperf3 bind9-dnsutils iputils-ping)
# packaging: tools/build-deb.sh (dpkg-buildpackage, debhelper), the package test (lintian,
# fakeroot), systemd-analyze for the unit, man for the man page check
PKGS+=(debhelper dpkg-dev fakeroot lintian systemd man-db)
# IPFIX export (--ipfix): libfixbuf encodes it; the collector tests decode it with pmacct's
# nfacctd, nfdump's nfcapd and python3-ipfix (the runtime libfixbuf9 comes through shlibs:Depends)
PKGS+=(libfixbuf-dev pmacct nfdump python3-ipfix)
# robustness: libFuzzer targets (clang, its sanitizer/fuzzer runtime) and clang-tidy
PKGS+=(clang libclang-rt-14-dev clang-tidy)
# Kafka export (--kafka): librdkafka (its mock cluster is the tests' broker), kcat the consumer
PKGS+=(librdkafka-dev kcat)
if [ "${L7GATE_EXTRA_PKGS:-}" != "" ]; then
  read -r -a extra <<<"$L7GATE_EXTRA_PKGS"
  PKGS+=("${extra[@]}")
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
