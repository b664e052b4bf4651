#!/bin/bash
# Instructions per packet of l7gate, counted by valgrind's callgrind (deterministic where the
# wall-clock benchmarks are noisy), checked against the committed budget.
#
#   perf/callgrind.sh [--update] [--mix established|attack|syn|newflow|real] [--no-build] [--keep]
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
#
# The established mix is measured twice: once replayed once (every flow new, nDPI's cost
# dominates) and once replayed twice in a row (the second copy's timestamps 1.4 s later, so
# nothing expires in between). The difference is the cost of the second pass, where every
# flow is known: the fast path of the established traffic, with its own budget
# (process_burst_ir_per_packet_established_known).
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

# run_cg CAPTURE NAME: l7gate under callgrind on CAPTURE; $tmp/NAME.stats.json, NAME.annotate.txt
run_cg() {
  echo "callgrind: $builddir/l7gate on $(basename "$1") (a few minutes under valgrind)..." >&2
  if ! timeout 1800 valgrind --tool=callgrind --callgrind-out-file="$tmp/$2.out" \
      "$L7GATE" -l 0-1 --no-huge -m 1024 --no-pci --file-prefix "l7cg-$$" --log-level='*:warning' \
      --vdev "net_pcap0,rx_pcap=$1" --vdev net_null1,no-rx=1 \
      -- --metrics off --idle-exit 300 --clock capture --stats-json "$tmp/$2.stats.json" > "$tmp/$2.run.txt" 2>&1; then
    echo "perf/callgrind.sh: l7gate under valgrind failed:" >&2
    tail -n 30 "$tmp/$2.run.txt" >&2
    exit 1
  fi
  callgrind_annotate --inclusive=yes --threshold=100 "$tmp/$2.out" > "$tmp/$2.annotate.txt" 2>/dev/null
}
run_cg "$pcap" once
if [ "$mix" = established ]; then
  # The capture twice over, the copy 1.4 s later (the mix spans 1.37 s; every timeout is longer).
  /usr/bin/python3 - "$pcap" "$tmp/twice.pcap" <<'PY'
import sys
sys.path.insert(0, "tests/integration")
from harness import read_pcap_records, write_pcap_records
recs = read_pcap_records(sys.argv[1])
write_pcap_records(sys.argv[2], recs + [(t + 1400000, frame) for t, frame in recs])  # +1.4 s
PY
  run_cg "$tmp/twice.pcap" twice
fi

budget_file=perf/callgrind-budget.txt
/usr/bin/python3 - "$tmp" "$mix" "$budget_file" "$update" "$builddir" <<'PY'
import json, os, re, sys
tmp, mix, budget_file, update, builddir = sys.argv[1:6]


def figures(name):
    st = json.load(open("%s/%s.stats.json" % (tmp, name)))
    total = pb = None
    for line in open("%s/%s.annotate.txt" % (tmp, name)):
        m = re.match(r"\s*([\d,]+)\s+\(.*?\)\s+(.*)$", line)
        if not m:
            continue
        ir, what = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in what:
            total = ir
        elif "Worker::process_burst(" in what and pb is None:
            pb = ir  # the first (largest) inclusive entry
    rx = st["totals"]["rx_packets"]
    if not rx or total is None or pb is None:
        sys.exit("perf/callgrind.sh: could not read rx_packets or the Ir figures (symbols stripped?)")
    return st, rx, total, pb


st, rx, total, pb = figures("once")
print("mix %s: %d packets, %d flows created" % (mix, rx, st["flows"]["created"]))
print("total Ir / packet:                     %10.0f  (%d Ir: EAL start-up, pcap reading, idle polls included)" % (total / rx, total))
print("Worker::process_burst inclusive / pkt: %10.0f  (%d Ir)" % (pb / rx, pb))
measured = {"process_burst_ir_per_packet_" + mix: pb / rx}
if os.path.exists("%s/twice.stats.json" % tmp):
    st2, rx2, _, pb2 = figures("twice")
    if rx2 != 2 * rx or st2["flows"]["created"] != st["flows"]["created"]:
        sys.exit("perf/callgrind.sh: the second pass was not all known flows (%d packets, %d flows created)"
                 % (rx2, st2["flows"]["created"]))
    known = (pb2 - pb) / rx
    print("second pass, every flow known:         %10.1f  (%d Ir over %d packets)" % (known, pb2 - pb, rx))
    measured["process_burst_ir_per_packet_" + mix + "_known"] = known

lines = open(budget_file).read().splitlines() if os.path.exists(budget_file) else []
budgets = {}
for l in lines:
    f = l.split()
    if len(f) == 2 and not l.startswith("#"):
        budgets[f[0]] = float(f[1])
if update == "1":
    out = [l for l in lines if not (l.split() and l.split()[0] in measured)]
    if not out:
        out = [
            "# Committed instruction budget of l7gate's per-packet path, checked by perf/callgrind.sh",
            "# (fails when a new measurement is more than 10% above): callgrind Ir inside",
            "# l7gate::dp::Worker::process_burst and below, per received packet, release build,",
            "# the mix replayed once (every flow new: parse + flow insert + nDPI until classified);",
            "# *_known: the established mix's second pass, every flow known (the fast path).",
            "# Update with `perf/callgrind.sh --update [--mix M]` and say why in the commit.",
        ]
    for key, v in measured.items():
        out.append("%s %.0f" % (key, v))
        print("budget %s written to %s: %.0f" % (key, budget_file, v))
    open(budget_file, "w").write("\n".join(out) + "\n")
    sys.exit(0)
ok = True
for key, v in measured.items():
    if key not in budgets:
        print("no budget for %s in %s (run with --update to set it)" % (key, budget_file))
        continue
    limit = budgets[key] * 1.10
    verdict = "OK" if v <= limit else "OVER BUDGET"
    print("%s: budget %.0f, limit +10%% = %.0f: %s (%+.1f%%)" % (key, budgets[key], limit, verdict, (v / budgets[key] - 1) * 100))
    ok = ok and v <= limit
sys.exit(0 if ok else 1)
PY
