#!/bin/bash
# Instructions per packet of l7gate, counted by valgrind's callgrind (deterministic where the
# wall-clock benchmarks are noisy), checked against the committed budget.
#
#   perf/callgrind.sh [--update] [--mix established|attack|syn|real] [--no-build] [--keep]
#
# Runs the release build under `valgrind --tool=callgrind` replaying one mix once (no
# infinite_rx; --idle-exit; --clock capture so that time, and so expiry and nDPI, follow the
# capture and not the slowed-down wall clock), then prints
#   - total Ir / rx_packets (everything: EAL start-up, libpcap reading the file, idle polls),
#   - Ir inside l7gate::dp::Worker::process_burst and everything it calls / rx_packets (the
#     per-packet path: parse, flow lookup/insert, nDPI, verdict; not the RX/TX bursts),
# and compares the second with perf/callgrind-budget.txt: exit 1 when it is more than 10%
# over the budget. --update writes the measured figure as the new budget instead (commit it
# with the change that explains it).
set -euo pipefail
cd "$(dirname "$0")/.."

mix=established
update=0
build=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1; shift ;;
    --mix) mix=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/callgrind.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for t in valgrind callgrind_annotate; do
  command -v "$t" >/dev/null 2>&1 || { echo "perf/callgrind.sh: $t not found (apt-get install valgrind)" >&2; exit 2; }
done

if [ "$build" = 1 ]; then
  builddir=$(tools/build.sh release | tail -n 1)
else
  builddir=build
fi
[ -x "$builddir/l7gate" ] || { echo "perf/callgrind.sh: $builddir/l7gate missing" >&2; exit 2; }
pcap=$(perf/traffic.sh "$mix")

tmp=$(mktemp -d /tmp/l7gate-callgrind.XXXXXX)
cleanup() {
  if [ "$keep" = 1 ]; then
    echo "perf/callgrind.sh: outputs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
cp "$builddir/l7gate" "$tmp/l7gate"  # immune to a rebuild of build/ meanwhile
L7GATE=$tmp/l7gate

echo "callgrind: $builddir/l7gate on $(basename "$pcap") (a few minutes under valgrind)..." >&2
if ! timeout 1800 valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" \
    "$L7GATE" -l 0-1 --no-huge -m 1024 --no-pci --file-prefix "l7cg-$$" --log-level='*:warning' \
    --vdev "net_pcap0,rx_pcap=$pcap" --vdev net_null1,no-rx=1 \
    -- --metrics off --idle-exit 300 --clock capture --stats-json "$tmp/stats.json" > "$tmp/run.txt" 2>&1; then
  echo "perf/callgrind.sh: l7gate under valgrind failed:" >&2
  tail -n 30 "$tmp/run.txt" >&2
  exit 1
fi
callgrind_annotate --inclusive=yes "$tmp/callgrind.out" > "$tmp/annotate.txt" 2>/dev/null

budget_file=perf/callgrind-budget.txt
/usr/bin/python3 - "$tmp" "$mix" "$budget_file" "$update" "$builddir" <<'PY'
import json, re, sys
tmp, mix, budget_file, update, builddir = sys.argv[1:6]
st = json.load(open(tmp + "/stats.json"))
rx = st["totals"]["rx_packets"]
total = pb = None
for line in open(tmp + "/annotate.txt"):
    m = re.match(r"\s*([\d,]+)\s+\(.*?\)\s+(.*)$", line)
    if not m:
        continue
    ir, what = int(m.group(1).replace(",", "")), m.group(2)
    if "PROGRAM TOTALS" in what:
        total = ir
    elif "Worker::process_burst(" in what and pb is None:
        pb = ir  # the first (largest) inclusive entry
if not rx or total is None or pb is None:
    sys.exit("perf/callgrind.sh: could not read rx_packets or the Ir figures (symbols stripped?)")
key = "process_burst_ir_per_packet_" + mix
measured = pb / rx
print("mix %s: %d packets, %d flows created" % (mix, rx, st["flows"]["created"]))
print("total Ir / packet:                     %10.0f  (%d Ir: EAL start-up, pcap reading, idle polls included)" % (total / rx, total))
print("Worker::process_burst inclusive / pkt: %10.0f  (%d Ir)" % (measured, pb))
lines = open(budget_file).read().splitlines() if __import__("os").path.exists(budget_file) else []
budget = None
for l in lines:
    f = l.split()
    if len(f) == 2 and f[0] == key:
        budget = float(f[1])
if update == "1":
    out = [l for l in lines if not l.startswith(key + " ")]
    if not out:
        out = [
            "# Committed instruction budget of l7gate's per-packet path, checked by perf/callgrind.sh",
            "# (fails when a new measurement is more than 10% above): callgrind Ir inside",
            "# l7gate::dp::Worker::process_burst and below, per received packet, release build,",
            "# the mix replayed once (every flow new: parse + flow insert + nDPI until classified).",
            "# Update with `perf/callgrind.sh --update [--mix M]` and say why in the commit.",
        ]
    out.append("%s %.0f" % (key, measured))
    open(budget_file, "w").write("\n".join(out) + "\n")
    print("budget %s written to %s: %.0f" % (key, budget_file, measured))
    sys.exit(0)
if budget is None:
    print("no budget for %s in %s (run with --update to set it)" % (key, budget_file))
    sys.exit(0)
limit = budget * 1.10
verdict = "OK" if measured <= limit else "OVER BUDGET"
print("budget %.0f, limit +10%% = %.0f: %s (%+.1f%%)" % (budget, limit, verdict, (measured / budget - 1) * 100))
sys.exit(0 if measured <= limit else 1)
PY
