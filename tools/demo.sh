#!/bin/bash
# Installs what is missing, builds l7gate in release mode and runs it as a bridge between two
# DPDK pcap vdevs on generated sample traffic (no NIC, no hugepages), then prints what it did.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
dir=$(tools/build.sh release)
work="$dir/demo"
mkdir -p "$work"
/usr/bin/python3 tools/gen_traffic.py "$work" --set bridge >/dev/null

echo
echo "Sample traffic: $work/bridge-p0.pcap (LAN side, port 0) and $work/bridge-p1.pcap (WAN side, port 1)"
cmd=("$dir/l7gate" --no-huge --no-pci -m 256 -l 0-1 --log-level='*:warning'
     --file-prefix "l7gate-demo-$$"
     --vdev "net_pcap0,rx_pcap=$work/bridge-p0.pcap,tx_pcap=$work/out-p0.pcap"
     --vdev "net_pcap1,rx_pcap=$work/bridge-p1.pcap,tx_pcap=$work/out-p1.pcap"
     -- --pairs 0:1 --idle-exit 300 --stats-json "$work/stats.json")
echo "Running: ${cmd[*]}"
echo
"${cmd[@]}"
echo
echo "Forwarded frames: $work/out-p1.pcap (to WAN) and $work/out-p0.pcap (to LAN); all counters: $work/stats.json"
