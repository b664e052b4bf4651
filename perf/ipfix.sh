#!/bin/bash
# Cost of IPFIX export (issue 21): the established and newflow mixes, l7gate with and without
# --ipfix to a local UDP collector, alternating in the same run, min / median / max of the
# forwarding rate and of the ratio; and the export rate the control side sustained on its one
# core (records the ipfix sink sent per second of the newflow runs, with what it lost).
#
#   perf/ipfix.sh [--runs N] [--duration S] [--no-build]
#
# Same EAL set-up as perf/run.sh (lcore 0 control, lcore 1 the one worker; net_pcap replay
# with infinite_rx into net_null); the newflow mix with --bench-fresh-flows and short idle
# timeouts, so records keep coming. The collector is a UDP socket in a Python process that
# counts datagrams (decoding is the collectors' tests' job, tests/integration/test_ipfix.py).
# Writes the table on stdout; copy it into perf/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
runs=3 duration=5 build=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: perf/ipfix.sh [--runs N] [--duration S] [--no-build]" >&2; exit 2 ;;
  esac
done
[ "$build" = 1 ] && nice -n 19 tools/build.sh release >/dev/null
L7GATE=$ROOT/build/l7gate
tmp=$(mktemp -d /tmp/l7g-ipfix-perf.XXXXXX)
collector=
trap 'kill "$collector" 2>/dev/null || true; rm -rf "$tmp"' EXIT
FRESH_ARGS=(--flows 8388608 --dpi-flows 65536 --timeouts tcp-syn=1,tcp=2,tcp-closed=1,udp=1,other=1)

port_file=$tmp/port
# The collector shares the control thread's core (lcore 0), as perf/kafka.sh's mock broker: in
# production it runs elsewhere, and never on a worker's core.
taskset -c 0 $PY - "$port_file" "$tmp/collector.txt" <<'EOF' &
import socket, sys, signal
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
n = b = 0
def done(*_):
    open(sys.argv[2], "w").write("%d %d\n" % (n, b)); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    d = s.recv(70000); n += 1; b += len(d)
EOF
collector=$!
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")

rows=()
for mix in established newflow; do
  pcap=$(perf/traffic.sh "$mix")
  n=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['packets'])" "${pcap%.pcap}.json")
  extra=() mode=replay
  if [ "$mix" = newflow ]; then extra=(--bench-fresh-flows "$n" "${FRESH_ARGS[@]}"); mode=fresh; fi
  for run in $(seq "$runs"); do
    for tool in plain ipfix; do
      out=$tmp/$mix-$tool-$run
      args=()
      [ "$tool" = ipfix ] && args=(--ipfix "127.0.0.1:$port")
      timeout -s INT $((duration + 120)) "$L7GATE" -l 0-1 --no-huge -m 1024 --no-pci \
        --file-prefix "l7ipfixperf-$$-$mix-$run-$tool" --log-level='*:warning' \
        --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null1,no-rx=1 \
        -- --metrics off --duration "$duration" --stats-interval 1 --stats-json "$out.json" \
        --mbufs $((n + 16384)) "${extra[@]}" "${args[@]}" > "$out.txt" 2>&1
      $PY perf/bench.py parse-l7gate "$mix" "$run" "$out.json" "$out.txt" "${pcap%.pcap}.json" "$mode" \
        "l7gate-$tool" > "$out.parsed"
    done
  done
  rows+=("$mix")
done
kill -TERM "$collector"; wait "$collector" 2>/dev/null || true
$PY - "$tmp" "$runs" "$duration" "$(cat "$tmp/collector.txt")" "${rows[@]}" <<'EOF'
import json, os, statistics, sys
tmp, runs, duration, coll = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
mmm = lambda v, f: "%s / %s / %s" % (f % min(v), f % statistics.median(v), f % max(v))
print("| mix | l7gate Mpps (no export) | l7gate Mpps (--ipfix) | ratio ipfix/plain | ipfix records/s sent | lost (sink_full / write_error) |")
print("|---|---|---|---|---|---|")
for mix in sys.argv[5:]:
    plain, ipfix, ratio, rate, lost = [], [], [], [], [0, 0]
    for r in range(1, runs + 1):
        p = json.load(open(os.path.join(tmp, "%s-plain-%d.parsed" % (mix, r))))["pps"] / 1e6
        i = json.load(open(os.path.join(tmp, "%s-ipfix-%d.parsed" % (mix, r))))["pps"] / 1e6
        st = json.load(open(os.path.join(tmp, "%s-ipfix-%d.json" % (mix, r))))
        sink = st["flow_log"]["sinks"]["ipfix"]
        plain.append(p); ipfix.append(i); ratio.append(i / p)
        rate.append(sink["written"] / st["elapsed_seconds"])
        lost[0] += sink["lost"]["sink_full"] + st["flow_log"]["lost"]; lost[1] += sink["lost"]["write_error"]
    print("| %s | %s | %s | %s | %s | %d / %d |" % (mix, mmm(plain, "%.3f"), mmm(ipfix, "%.3f"), mmm(ratio, "%.3f"),
          mmm(rate, "%.0f"), lost[0], lost[1]))
print("\n%d runs of %s s per mix and tool, alternating; the collector received %s datagrams (%s bytes)."
      % (runs, duration, coll[0], coll[1]))
EOF
