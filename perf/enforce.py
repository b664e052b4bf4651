#!/usr/bin/python3
"""Enforcement benchmark: the per-packet cost of the pass, drop, shape and police paths on
established flows, and the shaper's achieved aggregate rate with one and two workers.

    perf/enforce.py [--runs N] [--duration S] [--no-build]      (as root: DPDK, hugepages)

Every run replays the `established` mix (perf/traffic.sh: 10k flows, 137k packets) endlessly
from net_pcap (infinite_rx) into a net_null port, so after the first pass every packet belongs
to an established flow with a cached verdict. The variants differ only in the policy:

  pass          default: pass                     (verdict cached: forward)
  drop          default: drop                     (verdict cached: free the mbuf)
  shape-open    default: shape:wide, 100 Gbit/s   (every packet through the shaper's admit,
                                                   credit always there: its fixed cost)
  police-open   default: police:wide, 100 Gbit/s
  shape-1w      default: shape:s, 200 Mbit/s      (over the rate: queues, delays, drops)
  shape-2w      the same with two workers sharing the one bucket (two queues, two lcores)

Mpps per worker = worker rx_packets / elapsed_seconds; cyc/pkt = busy_cycles / rx_packets
(RX burst end to TX end, the shaper's drain included); achieved = port 1 tx bytes * 8 /
elapsed, over the configured rate. Runs alternate variants; min / median / max over runs.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POLICY = """version: 1
default_policy: all
shapers:
  wide: {rate: 100g, burst: 64mb}
  s: {rate: 200mbit, burst: 256kb}
policies:
  all: {default: "%s"}
"""

VARIANTS = [
    ("pass", "pass", 1),
    ("drop", "drop", 1),
    ("shape-open", "shape:wide", 1),
    ("police-open", "police:wide", 1),
    ("shape-1w", "shape:s", 1),
    ("shape-2w", "shape:s", 2),
]
LIMITED_BPS = 200e6


def lcores(n):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= n:
        return "--lcores=" + ",".join("%d@%d" % (i, cpus[i]) for i in range(n))
    return "--lcores=" + ",".join(["0@%d" % cpus[0]] + ["%d@%d" % (i, cpus[(i - 1) % len(cpus)])
                                                         for i in range(1, n)])


def run_one(binary, pcap, packets, variant, marker, workers, duration, work, tag, mem):
    pol = os.path.join(work, variant + ".yaml")
    with open(pol, "w") as f:
        f.write(POLICY % marker)
    stats = os.path.join(work, "%s-%s.json" % (variant, tag))
    rx = ",".join(["rx_pcap=" + pcap] * workers)
    cmd = [binary, lcores(workers + 1)] + mem + ["--no-pci", "--file-prefix", "l7enf-%d-%s" % (os.getpid(), tag),
           "--log-level=*:warning",
           "--vdev", "net_pcap0,%s,infinite_rx=1" % rx, "--vdev", "net_null1,no-rx=1", "--",
           "--metrics", "off", "--duration", str(duration), "--stats-json", stats,
           "--policy", pol, "--mbufs", str(packets * workers + 16384)]
    if workers > 1:
        cmd += ["--rxq", str(workers), "--rss", "driver"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=duration + 240)
    if p.returncode != 0:
        sys.exit("perf/enforce.py: %s failed (%s):\n%s\ncommand: %s" % (variant, p.returncode,
                 p.stdout[-2000:], " ".join(cmd)))
    with open(stats) as f:
        st = json.load(f)
    el = st["elapsed_seconds"]
    ws = st["workers"]
    rxp = sum(w["rx_packets"] for w in ws)
    busy = sum(w["busy_cycles"] for w in ws)
    tx_bytes = sum(p["tx_bytes"] for p in st["ports"] if p["port"] == 1)
    return {"variant": variant, "workers": workers, "elapsed": el,
            "mpps_per_worker": rxp / el / 1e6 / workers,
            "cyc_pkt": busy / rxp if rxp else 0,
            "achieved": tx_bytes * 8 / el / LIMITED_BPS if marker == "shape:s" else None,
            "drops": {k: v for k, v in st["drops"].items() if v},
            "cmd": " ".join(cmd)}


def mmm(vals, fmt):
    if not vals:
        return "-"
    return "%s / %s / %s" % (fmt % min(vals), fmt % statistics.median(vals), fmt % max(vals))


def parse_args(runs):
    """The options of the benchmarks built on prepare() and run_one(): --runs N (default
    runs), --duration S (default 5), --no-build."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    return ap.parse_args()


def prepare(tool, no_build):
    """Root check, release build (unless no_build), the established mix and a private copy
    of the binary. Returns (binary, pcap, packets, work directory, EAL memory options)."""
    os.chdir(ROOT)
    if os.geteuid() != 0:
        sys.exit("perf/%s: run as root (DPDK)" % tool)
    build = "build"
    if not no_build:
        build = subprocess.run(["tools/build.sh", "release"], check=True, stdout=subprocess.PIPE,
                               text=True).stdout.split()[-1]
    pcap = subprocess.run(["perf/traffic.sh", "established"], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()
    with open(pcap[:-5] + ".json") as f:
        packets = json.load(f)["packets"]
    work = tempfile.mkdtemp(prefix="l7gate-%s-" % tool.split(".")[0])
    binary = os.path.join(work, "l7gate")
    subprocess.run(["cp", os.path.join(build, "l7gate"), binary], check=True)
    return binary, pcap, packets, work, ["--no-huge", "-m", "3072"]


def main():
    a = parse_args(runs=3)
    binary, pcap, packets, work, mem = prepare("enforce.py", a.no_build)
    results = []
    for run in range(1, a.runs + 1):
        order = VARIANTS[run - 1:] + VARIANTS[:run - 1]  # rotate: noise hits every variant
        for variant, marker, workers in order:
            r = run_one(binary, pcap, packets, variant, marker, workers, a.duration, work,
                        "%s-%d" % (variant, run), mem)
            r["run"] = run
            results.append(r)
            print("  run %d %-12s %.3f Mpps/worker  %.0f cyc/pkt%s" % (
                run, variant, r["mpps_per_worker"], r["cyc_pkt"],
                "  achieved %.4f of the rate" % r["achieved"] if r["achieved"] else ""), file=sys.stderr)
    lines = []
    p = lines.append
    p("# Enforcement paths, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    p("")
    p("`perf/enforce.py --runs %d --duration %d`; established mix, %d packets, endless replay; "
      "EAL `%s --no-pci --vdev net_pcap0,rx_pcap=established.pcap,infinite_rx=1 --vdev net_null1,no-rx=1`; "
      "%d logical cores. min / median / max over %d runs." % (a.runs, a.duration, packets, " ".join(mem),
                                                              os.cpu_count(), a.runs))
    p("")
    p("| variant | workers | Mpps per worker | cyc/pkt | achieved / configured rate |")
    p("|---|---|---|---|---|")
    base = {}
    for variant, marker, workers in VARIANTS:
        rs = [r for r in results if r["variant"] == variant]
        ach = [r["achieved"] for r in rs if r["achieved"] is not None]
        p("| %s | %d | %s | %s | %s |" % (variant, workers, mmm([r["mpps_per_worker"] for r in rs], "%.3f"),
                                          mmm([r["cyc_pkt"] for r in rs], "%.0f"), mmm(ach, "%.4f") if ach else "-"))
        base[variant] = statistics.median([r["cyc_pkt"] for r in rs])
    p("")
    p("Per-packet cost relative to pass (median cyc/pkt ratio, same runs): " + ", ".join(
        "%s %.2fx" % (v, base[v] / base["pass"]) for v, _, _ in VARIANTS[1:4]))
    p("")
    p("Drops of the last limited runs: " + "; ".join(
        "%s: %s" % (r["variant"], r["drops"]) for r in results[-len(VARIANTS):] if r["variant"].startswith("shape-")))
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs("perf/results", exist_ok=True)
    out = "perf/results/enforce-%s.md" % datetime.datetime.now().strftime("%Y%m%d-%H%M")
    with open(out, "w") as f:
        f.write(text)
        f.write("\nCommands:\n\n" + "\n".join("    " + r["cmd"] for r in results[:len(VARIANTS)]) + "\n")
    print("written: " + out, file=sys.stderr)


if __name__ == "__main__":
    main()
