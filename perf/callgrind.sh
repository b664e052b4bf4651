#!/bin/bash
# Instructions per packet of l7gate's worker loop, counted by valgrind's callgrind
# (deterministic where the wall-clock benchmarks are noisy), checked against the committed
# budget.
#
#   perf/callgrind.sh [--mix all|M[,M...]] [--packets N] [--update] [--results FILE]
#                     [--no-build] [--keep]
#
# M: established, newflow, syn, attack (all: these four; default established), real. Each mix
# is replayed once by the release build under `valgrind --tool=callgrind` (no infinite_rx;
# --clock capture, so that time, and so expiry and nDPI, follow the capture and not the
# slowed-down wall clock; --bench-stop-at-end, so the worker leaves its loop at its first idle
# poll after the capture, flushes its flows and l7gate exits: the same work every run;
# --flow-log, so every ended flow's record is queued). Measured: Ir inside
# l7gate::dp::Worker::run and everything it calls (RX burst, parse, flow lookup/insert, nDPI,
# verdict, TX burst, housekeeping and expiry, nDPI give-up, flow-record enqueue, shaper
# drain, the flush of every flow at the end) / rx_packets: key worker_loop_ir_per_packet_M.
# The established mix is also replayed twice in a row (the copy 1.4 s later, so nothing
# expires in between): the Ir of the second pass / its packets is the cost of a packet of a
# known flow, the fast path (worker_loop_ir_per_packet_established_known; about two thirds
# of it is net_pcap's RX, so l7gate's own part, Worker::process_burst and below, is checked
# too: process_burst_ir_per_packet_established_known).
# Two runs on cuts measure what no whole mix reaches (no flow expires inside a mix, and no mix
# is shaped): expiry, the first 10,000 SYNs of the syn mix then the same as new flows (the
# low 16 bits of both addresses changed) 31 s later, past the 30 s tcp-syn timeout, so that
# housekeeping's scan expires the first copy's flows during the second: the Ir of the second
# copy / its packets, against a run of the first copy alone (worker_loop_ir_per_packet_syn_
# expiry; fails unless every first-copy flow expired); and the shaper, the first 30,000
# packets of the established mix with perf/callgrind-policy.yaml (TLS through a 100 Mbit/s
# shaper, about half the packets): Ir / packet of that run (..._established_shaped; fails
# unless packets were delayed and drained, dropped by max_delay and by a full queue).
#
# Every key is compared with perf/callgrind-budget.txt: more than 3% over its budget fails,
# more than 3% under passes with a hint to lower the budget; a key with no budget fails.
# Exit 1 when any key fails. --update writes the measured figures as the budgets instead
# (commit them with the reason). --results FILE appends one line per key:
# callgrind-KEY<TAB>pass|fail<TAB>detail. --packets N replays only the first N packets of
# every mix (a different figure: budgets are for whole mixes unless said otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

mixes=established
update=0
build=1
keep=0
packets=0
results=
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1; shift ;;
    --mix) mixes=${2:?--mix needs a value}; shift 2 ;;
    --packets) packets=${2:?--packets needs a number}; shift 2 ;;
    --results) results=${2:?--results needs a file}; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/callgrind.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$mixes" = all ] && mixes=established,newflow,syn,attack
IFS=, read -r -a mix_list <<< "$mixes"
for m in "${mix_list[@]}"; do
  case "$m" in
    established|newflow|syn|attack|real) ;;
    *) echo "perf/callgrind.sh: unknown mix $m (established, newflow, syn, attack, real, all)" >&2; exit 2 ;;
  esac
done
case "$packets" in
  ''|*[!0-9]*) echo "perf/callgrind.sh: --packets needs a number" >&2; exit 2 ;;
esac
for t in valgrind callgrind_annotate; do
  command -v "$t" >/dev/null 2>&1 || { echo "perf/callgrind.sh: $t not found (apt-get install valgrind)" >&2; exit 2; }
done

if [ "$build" = 1 ]; then
  builddir=$(tools/build.sh release | tail -n 1)
else
  builddir=build
fi
[ -x "$builddir/l7gate" ] || { echo "perf/callgrind.sh: $builddir/l7gate missing" >&2; exit 2; }

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

# The two runs on cuts of a mix (whole mixes would take a minute more each under valgrind).
SHAPED_PACKETS=30000
EXPIRY_PACKETS=10000

# run_cg CAPTURE NAME [L7GATE OPTION...]: l7gate under callgrind on CAPTURE;
# $tmp/NAME.stats.json, NAME.annotate.txt; on failure $tmp/NAME.failed (the other mixes still
# run).
run_cg() {
  echo "callgrind: $builddir/l7gate on $2 ($(basename "$1"), a minute or more under valgrind)..." >&2
  local t0=$SECONDS
  # --flow-log: every ended flow queues its record, as in production. The control thread
  # drains the ring when valgrind lets it run: a ring that could fill would make the count
  # depend on that (a lost record, or the wait for room at the final flush), so it holds
  # every flow of the largest mix (attack: 147,043; checked below: no record lost).
  if ! timeout 1800 valgrind --tool=callgrind --callgrind-out-file="$tmp/$2.out" \
      "$L7GATE" -l 0-1 --no-huge -m 1024 --no-pci --file-prefix "l7cg-$$" --log-level='*:warning' \
      --vdev "net_pcap0,rx_pcap=$1" --vdev net_null1,no-rx=1 \
      -- --metrics off --clock capture --bench-stop-at-end --flow-log "$tmp/$2.flows.jsonl" \
      --flow-log-ring 262144 \
      --stats-json "$tmp/$2.stats.json" "${@:3}" > "$tmp/$2.run.txt" 2>&1; then
    echo "perf/callgrind.sh: l7gate under valgrind failed on $2:" >&2
    tail -n 30 "$tmp/$2.run.txt" >&2
    echo "l7gate under valgrind failed" > "$tmp/$2.failed"
    return 0
  fi
  callgrind_annotate --inclusive=yes --threshold=100 "$tmp/$2.out" > "$tmp/$2.annotate.txt" 2>/dev/null
  echo "callgrind: $2 took $((SECONDS - t0)) s" >&2
}

# cut_capture IN OUT [twice|expiry [N]]: the first N packets of IN (N: the smaller of
# --packets and the optional N; all when neither); twice: followed by a copy 1.4 s later (the
# mixes span less; every timeout is longer); expiry: followed by a copy 31 s after the last
# packet (past the 30 s tcp-syn timeout, and every other one but tcp's) whose addresses' low
# 16 bits are XORed with 0x9E37 (checksums updated), so that its flows are new ones and the
# first copy's all expire through housekeeping's expiry scan meanwhile.
cut_capture() {
  /usr/bin/python3 - "$1" "$2" "$packets" "${3:-}" "${4:-0}" <<'PY'
import struct, sys
sys.path.insert(0, "tests/integration")
from harness import read_pcap_records, write_pcap_records
src, dst, n, how, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
n = min(x for x in (n, cap) if x) if n or cap else 0


def csum_fix(c, old, new):
    """RFC 1624: checksum c after a 16-bit word old became new."""
    c = (~c & 0xFFFF) + (~old & 0xFFFF) + new
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    return ~c & 0xFFFF


def other_flows(f, v=0x9E37):
    """The frame with the low 16 bits of both IP addresses XORed with v."""
    f = bytearray(f)
    off = 12
    et = struct.unpack_from("!H", f, off)[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = struct.unpack_from("!H", f, off)[0]
    ip = off + 2
    if et == 0x0800:
        words, l4, proto = [ip + 14, ip + 18], ip + (f[ip] & 15) * 4, f[ip + 9]
        fragment = struct.unpack_from("!H", f, ip + 6)[0] & 0x1FFF
    elif et == 0x86DD:
        words, l4, proto, fragment = [ip + 22, ip + 38], ip + 40, f[ip + 6], 0
    else:
        sys.exit("perf/callgrind.sh: the expiry copy needs IPv4 or IPv6 frames")
    at = {6: 16, 17: 6}.get(proto) if not fragment else None  # the L4 checksum's offset
    for w in words:
        old = struct.unpack_from("!H", f, w)[0]
        new = old ^ v
        struct.pack_into("!H", f, w, new)
        if et == 0x0800:
            struct.pack_into("!H", f, ip + 10, csum_fix(struct.unpack_from("!H", f, ip + 10)[0], old, new))
        if at is not None and l4 + at + 2 <= len(f):
            c = struct.unpack_from("!H", f, l4 + at)[0]
            if proto == 6 or c != 0:  # a zero UDP checksum over IPv4 means none
                struct.pack_into("!H", f, l4 + at, csum_fix(c, old, new))
    return bytes(f)


recs = read_pcap_records(src)
if n:
    recs = recs[:n]
span = recs[-1][0] - recs[0][0]
if how == "twice":
    if span >= 1400000:
        sys.exit("perf/callgrind.sh: %s spans %.2f s, the second copy would overlap" % (src, span / 1e6))
    recs = recs + [(t + 1400000, frame) for t, frame in recs]  # +1.4 s
elif how == "expiry":
    recs = recs + [(t + span + 31000000, other_flows(frame)) for t, frame in recs]
write_pcap_records(dst, recs)
print(len(recs))
PY
}

start=$SECONDS
for m in "${mix_list[@]}"; do
  pcap=$(perf/traffic.sh "$m")
  cut_capture "$pcap" "$tmp/$m.pcap" > "$tmp/$m.packets"
  run_cg "$tmp/$m.pcap" "$m"
  if [ "$m" = established ]; then
    cut_capture "$pcap" "$tmp/${m}_twice.pcap" twice > "$tmp/${m}_twice.packets"
    run_cg "$tmp/${m}_twice.pcap" "${m}_twice"
    # Shaped: the first $SHAPED_PACKETS packets, TLS through perf/callgrind-policy.yaml's shaper.
    cut_capture "$pcap" "$tmp/${m}_shaped.pcap" "" "$SHAPED_PACKETS" > "$tmp/${m}_shaped.packets"
    run_cg "$tmp/${m}_shaped.pcap" "${m}_shaped" --policy perf/callgrind-policy.yaml
  fi
  if [ "$m" = syn ]; then
    # Expiry: the first $EXPIRY_PACKETS SYNs, then again as new flows 31 s later; the
    # difference from the first copy alone.
    cut_capture "$pcap" "$tmp/${m}_expiry1.pcap" "" "$EXPIRY_PACKETS" > "$tmp/${m}_expiry1.packets"
    run_cg "$tmp/${m}_expiry1.pcap" "${m}_expiry1"
    cut_capture "$pcap" "$tmp/${m}_expiry2.pcap" expiry "$EXPIRY_PACKETS" > "$tmp/${m}_expiry2.packets"
    run_cg "$tmp/${m}_expiry2.pcap" "${m}_expiry2"
  fi
done
echo "callgrind: ${mixes} took $((SECONDS - start)) s under valgrind" >&2

budget_file=perf/callgrind-budget.txt
/usr/bin/python3 - "$tmp" "$mixes" "$budget_file" "$update" "$packets" "$results" <<'PY'
import json, os, re, sys
tmp, mixes, budget_file, update, packets, results = sys.argv[1:7]
TOL = 0.03
PREFIX = "worker_loop_ir_per_packet_"
PB_KNOWN = "process_burst_ir_per_packet_established_known"


class RunError(Exception):
    pass


def figures(name):
    """rx_packets, total Ir, Ir inclusive of Worker::run and of Worker::process_burst."""
    if os.path.exists("%s/%s.failed" % (tmp, name)):
        raise RunError(open("%s/%s.failed" % (tmp, name)).read().strip())
    st = json.load(open("%s/%s.stats.json" % (tmp, name)))
    total = run = pb = None
    for line in open("%s/%s.annotate.txt" % (tmp, name)):
        m = re.match(r"\s*([\d,]+)\s+\(.*?\)\s+(.*)$", line)
        if not m:
            continue
        ir, what = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in what:
            total = ir
        elif "Worker::run(" in what and run is None:
            run = ir  # the first (largest) inclusive entry
        elif "Worker::process_burst(" in what and pb is None:
            pb = ir
    rx = st["totals"]["rx_packets"]
    if not rx or total is None or run is None or pb is None:
        raise RunError("could not read rx_packets or the Ir figures (symbols stripped?)")
    want = int(open("%s/%s.packets" % (tmp, name)).read())
    if rx != want:
        raise RunError("%d packets received of the %d replayed: the worker stopped early" % (rx, want))
    if st["flow_log"]["lost"]:
        raise RunError("%d flow records lost (ring full): not deterministic" % st["flow_log"]["lost"])
    idle = sum(w["idle_polls"] for w in st["workers"])
    if idle != 1:
        raise RunError("%d idle polls (one expected, the last): not deterministic" % idle)
    return st, rx, total, run, pb


def extra_runs(mix):
    if mix == "established":
        measure_shaped()
    elif mix == "syn":
        measure_expiry()


measured = {}   # key -> figure
broken = {}     # key -> why it could not be measured


def measure_shaped():
    """The established mix's first packets, its TLS flows shaped far below their rate."""
    key = PREFIX + "established_shaped"
    try:
        st, rx, _, run, _ = figures("established_shaped")
        sh = st["shapers"]["by_shaper"]["slow"]
        dr = st["drops"]
        print("  shaped (first %d packets, TLS through shape:slow): %d sent at once, %d delayed (drained),"
              " %d dropped (overflow %d, max_delay %d), %d still queued at the end"
              % (rx, sh["sent"], sh["delayed"], sh["dropped"], dr["shaper_overflow"], dr["shaper_delay"],
                 dr["shaper_flush"]))
        if not sh["delayed"] or not dr["shaper_delay"] or not dr["shaper_overflow"]:
            raise RunError("the shaper did not queue, drain and drop (delayed %d, shaper_delay %d, "
                           "shaper_overflow %d): not the shaped path" % (sh["delayed"], dr["shaper_delay"],
                                                                       dr["shaper_overflow"]))
    except (RunError, OSError, ValueError, KeyError) as e:
        broken[key] = str(e)
        return
    print("  Worker::run inclusive / packet, shaped: %8.0f  (%d Ir)" % (run / rx, run))
    measured[key] = run / rx


def measure_expiry():
    """The syn mix's first SYNs, then the same as new flows 31 s later: the second copy's
    Ir (its half-open flows created, the first copy's expired by housekeeping's scan) per
    packet of it."""
    key = PREFIX + "syn_expiry"
    try:
        st1, rx1, _, run1, _ = figures("syn_expiry1")
        st2, rx2, _, run2, _ = figures("syn_expiry2")
        n, f2 = st1["flows"]["created"], st2["flows"]
        print("  expiry (first %d SYNs, then %d more as new flows 31 s later): %d flows created, %d expired,"
              " %d flushed at the end" % (rx1, rx2 - rx1, f2["created"], f2.get("expired", 0), f2.get("flushed", 0)))
        if rx2 != 2 * rx1 or f2["created"] != 2 * n or f2.get("expired") != n or f2.get("flushed") != n:
            raise RunError("the first copy's %d flows did not all expire during the second (%d packets, "
                           "%d flows created, %d expired)" % (n, rx2, f2["created"], f2.get("expired", 0)))
    except (RunError, OSError, ValueError, KeyError) as e:
        broken[key] = str(e)
        return
    v = (run2 - run1) / rx1
    print("  second copy, first copy expiring:     %10.1f  (%d Ir over %d packets; the first copy alone %.1f)"
          % (v, run2 - run1, rx1, run1 / rx1))
    measured[key] = v

for mix in mixes.split(","):
    key = PREFIX + mix
    keys = [key] + ([key + "_known", PB_KNOWN] if mix == "established" else [])
    try:
        st, rx, total, run, pb = figures(mix)
    except (RunError, OSError, ValueError, KeyError) as e:
        for k in keys:
            broken[k] = str(e)
        extra_runs(mix)
        continue
    fl = st["flows"]
    print("mix %s: %d packets, %d flows created, %d expired, %d flushed at the end"
          % (mix, rx, fl["created"], fl.get("expired", 0), fl.get("flushed", 0)))
    print("  total Ir / packet:                    %10.0f  (%d Ir: EAL start-up and control thread included)" % (total / rx, total))
    print("  Worker::run inclusive / packet:       %10.0f  (%d Ir: the whole worker loop)" % (run / rx, run))
    print("  Worker::process_burst incl. / packet: %10.0f  (%d Ir: for comparison, not checked)" % (pb / rx, pb))
    measured[key] = run / rx
    extra_runs(mix)
    if mix == "established":
        try:
            st2, rx2, _, run2, pb2 = figures(mix + "_twice")
            if rx2 != 2 * rx or st2["flows"]["created"] != fl["created"]:
                raise RunError("the second pass was not all known flows (%d packets, %d flows created)"
                               % (rx2, st2["flows"]["created"]))
        except (RunError, OSError, ValueError, KeyError) as e:
            broken[key + "_known"] = broken[PB_KNOWN] = str(e)
            continue
        known = (run2 - run) / rx
        pb_known = (pb2 - pb) / rx
        print("  second pass, every flow known:        %10.1f  (%d Ir over %d packets; process_burst alone %.1f)"
              % (known, run2 - run, rx, pb_known))
        measured[key + "_known"] = known
        # Two thirds of the whole loop's figure here is net_pcap's RX (libpcap reading the
        # file, the copy into the mbuf): l7gate's own fast path keeps its own, finer check.
        measured[PB_KNOWN] = pb_known
if packets != "0":
    print("(the first %s packets of every mix only)" % packets)

lines = open(budget_file).read().splitlines() if os.path.exists(budget_file) else []
budgets = {}
for l in lines:
    f = l.split()
    if len(f) == 2 and not l.startswith("#"):
        budgets[f[0]] = float(f[1])
report = []  # (key, pass|fail, detail)
if update == "1":
    out = [l for l in lines if not (l.split() and l.split()[0] in measured)]
    for key, v in measured.items():
        out.append("%s %.0f" % (key, v))
        print("budget %s written to %s: %.0f (was %s)" % (key, budget_file, v, budgets.get(key, "none")))
    open(budget_file, "w").write("\n".join(out) + "\n")
else:
    for key, v in measured.items():
        if key not in budgets:
            report.append((key, "fail", "%.1f Ir/packet, no budget in %s (set one with --update)" % (v, budget_file)))
            continue
        b = budgets[key]
        d = (v / b - 1) * 100
        if v > b * (1 + TOL):
            report.append((key, "fail", "%.1f Ir/packet, %+.2f%% over the budget %.0f (tolerance 3%%)" % (v, d, b)))
        elif v < b * (1 - TOL):
            report.append((key, "pass", "%.1f Ir/packet, %+.2f%% under the budget %.0f: lower it with --update" % (v, d, b)))
        else:
            report.append((key, "pass", "%.1f Ir/packet, %+.2f%% of the budget %.0f" % (v, d, b)))
for key, why in broken.items():
    report.append((key, "fail", "not measured: " + why))
for key, verdict, detail in report:
    print("%s: %s: %s" % (key, "OK" if verdict == "pass" else "FAILED", detail))
if results:
    with open(results, "a") as f:
        for key, verdict, detail in report:
            f.write("callgrind-%s\t%s\t%s\n" % (key, verdict, detail.replace("\t", " ").replace("\n", " ")))
sys.exit(1 if broken or any(v == "fail" for _, v, _ in report) else 0)
PY
