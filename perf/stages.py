#!/usr/bin/python3
"""Per-stage cycles per packet: rx, parse, flow lookup, classify, policy, action, tx.

    perf/stages.py [--runs N] [--duration S] [--mix established] [--policy FILE]
                   [--flows N] [--l7gate-args "ARGS"]   (as root)

Builds build-prof/ (meson -Dprofiling=true: the worker's stage timers compiled in; release
builds have none), replays a perf/traffic.sh mix endlessly (net_pcap infinite_rx into
net_null, lcore 1 the worker) and prints min / median / max over the runs of the stats JSON's
stage_cycles_per_packet, next to the worker's busy cycles per packet. Timers cost a few
cycles each (two rdtsc per stage per burst, two per classify or policy call), so the sum
slightly exceeds an unprofiled build's figure.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["rx", "parse", "lookup", "classify", "policy", "action", "tx"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--mix", default="established")
    ap.add_argument("--policy", default="")
    ap.add_argument("--flows", type=int, default=10000, help="flows of the generated mix (perf/traffic.sh --flows)")
    ap.add_argument("--l7gate-args", default="", help="more l7gate options, e.g. \"--flows 16384\"")
    a = ap.parse_args()
    os.chdir(ROOT)
    if os.geteuid() != 0:
        sys.exit("perf/stages.py: run as root (DPDK)")
    if not os.path.exists("build-prof/build.ninja"):
        subprocess.run(["meson", "setup", "build-prof", "--buildtype=release", "-Dprofiling=true", "-Dtests=false"],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", "build-prof", "l7gate"], check=True, stdout=subprocess.DEVNULL)
    pcap = subprocess.run(["perf/traffic.sh", a.mix, "--flows", str(a.flows)], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    with open(pcap[:-5] + ".json") as f:
        packets = json.load(f)["packets"]
    work = tempfile.mkdtemp(prefix="l7gate-stages-")
    rows = []
    for run in range(1, a.runs + 1):
        stats = os.path.join(work, "s%d.json" % run)
        cmd = ["build-prof/l7gate", "-l", "0-1", "--no-huge", "-m", "3072", "--no-pci",
               "--file-prefix", "l7stages%d" % os.getpid(), "--log-level=*:warning",
               "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap, "--vdev", "net_null1,no-rx=1", "--",
               "--metrics", "off", "--duration", str(a.duration), "--stats-json", stats,
               "--mbufs", str(packets + 16384)]
        if a.policy:
            cmd += ["--policy", a.policy]
        cmd += a.l7gate_args.split()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=a.duration + 240)
        if p.returncode != 0:
            sys.exit("l7gate failed:\n" + p.stdout[-2000:])
        with open(stats) as f:
            st = json.load(f)
        w = st["workers"][0]
        row = dict(st["stage_cycles_per_packet"])
        row["busy"] = w["busy_cycles"] / w["rx_packets"]
        row["mpps"] = st["totals"]["rx_packets"] / st["elapsed_seconds"] / 1e6
        rows.append(row)
        print("  run %d: %s" % (run, " ".join("%s %.1f" % (k, row[k]) for k in STAGES + ["busy", "mpps"])),
              file=sys.stderr)
    print("| stage | cycles per packet (min / median / max over %d runs) |" % a.runs)
    print("|---|---|")
    for k in STAGES + ["busy", "mpps"]:
        v = [r[k] for r in rows]
        label = {"busy": "busy (RX burst end to TX end)", "mpps": "Mpps"}.get(k, k)
        print("| %s | %.1f / %.1f / %.1f |" % (label, min(v), statistics.median(v), max(v)))
    print("\ncommand: perf/stages.py --runs %d --duration %d --mix %s --flows %d%s%s; EAL: %s" % (
        a.runs, a.duration, a.mix, a.flows, " --policy " + a.policy if a.policy else "",
        " --l7gate-args \"%s\"" % a.l7gate_args if a.l7gate_args else "", " ".join(cmd[1:12])))


if __name__ == "__main__":
    main()
