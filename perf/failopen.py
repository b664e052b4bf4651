#!/usr/bin/python3
"""Fail-open takeover latency and standby forwarding rate (README "Watchdog and fail-open").

    perf/failopen.py [--runs N] [--frames N] [--watchdog-ms MS] [--slow-control MS]
                     [--bin build/l7gate]   (as root)

Each run replays a capture of --frames 200-byte UDP frames (50 flows) once through net_pcap
port 0 (port 1 empty), with --fail-open, --watchdog-ms and --test-stall-worker 0:2000:3000
(worker 0 stops, holding its burst, for 3 s once it has received 2,000 packets), optionally
with --test-slow-control (every control tick that many ms longer). Read from net_pcap's TX
timestamps (the time each frame was written): takeover latency, from the last frame the
worker sent before the stall to the first frame of the standby path's TX queue; forwarding
rate, the standby path's frames over the time from its first to its last (and, for
reference, the worker's over the frames it sent before the stall). Prints min / median / max
over the runs. The worker lcore spins while stalled (the test hook); the
watchdog thread shares the main lcore's CPU with the control thread.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import read_pcap_records, udp_frame, write_pcap_records  # noqa: E402

STALL_AFTER = 2000


def one_run(binary, work, inp, empty, i, a):
    outs = [[os.path.join(work, "r%d-out%d-q%d.pcap" % (i, p, q)) for q in range(2)] for p in (0, 1)]
    vdevs = []
    for p, rx in ((0, inp), (1, empty)):
        vdevs += ["--vdev", ",".join(["net_pcap%d" % p, "rx_pcap=" + rx] + ["tx_pcap=" + t for t in outs[p]])]
    cmd = [binary, "--no-huge", "--no-pci", "-m", "1024", harness.lcores_arg(2), "--log-level=*:warning",
           "--file-prefix", "l7gfo%d-%d" % (os.getpid(), i)] + vdevs + [
           "--", "--metrics", "off", "--idle-exit", "300", "--watchdog-ms", str(a.watchdog_ms), "--fail-open",
           "--test-stall-worker", "0:%d:3000" % STALL_AFTER]
    if a.slow_control:
        cmd += ["--test-slow-control", str(a.slow_control)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("l7gate failed:\n" + p.stderr[-3000:])
    worker = read_pcap_records(outs[1][0])
    standby = read_pcap_records(outs[1][1])
    first, last = standby[0][0], standby[-1][0]
    before_stall = [t for t, _ in worker if t <= first]
    before = max(before_stall)
    # The worker's own rate over the frames it sent before the stall, for reference.
    worker_rate = (len(before_stall) - 1) / max(before - before_stall[0], 1)
    for o in outs:
        for path in o:
            os.unlink(path)
    return (first - before) / 1000.0, (len(standby) - 1) / max(last - first, 1), len(standby), worker_rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=200000)
    ap.add_argument("--watchdog-ms", type=int, default=300)
    ap.add_argument("--slow-control", type=int, default=0)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "l7gate"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("perf/failopen.py: run as root (DPDK)")
    with tempfile.TemporaryDirectory(prefix="l7g-failopen-") as work:
        inp = os.path.join(work, "in.pcap")
        write_pcap_records(inp, [(1700000000000000 + i, udp_frame(1 + i % 50, 5000 + i % 50, i, 200))
                                 for i in range(a.frames)])
        empty = os.path.join(work, "empty.pcap")
        write_pcap_records(empty, [])
        lat, rate, wrate = [], [], []
        for i in range(a.runs):
            l, r, n, w = one_run(a.bin, work, inp, empty, i, a)
            print("run %d: takeover %.2f ms after the stall, standby path %d frames at %.2f Mpps "
                  "(the worker before the stall: %.2f Mpps)" % (i + 1, l, n, r, w))
            lat.append(l)
            rate.append(r)
            wrate.append(w)
    print("takeover latency (ms, --watchdog-ms %d%s): min %.2f / median %.2f / max %.2f"
          % (a.watchdog_ms, ", --test-slow-control %d" % a.slow_control if a.slow_control else "",
             min(lat), statistics.median(lat), max(lat)))
    print("standby forwarding rate (Mpps, net_pcap to net_pcap): min %.2f / median %.2f / max %.2f"
          % (min(rate), statistics.median(rate), max(rate)))
    print("worker rate before the stall, same runs (Mpps, %d frames): min %.2f / median %.2f / max %.2f"
          % (STALL_AFTER, min(wrate), statistics.median(wrate), max(wrate)))


if __name__ == "__main__":
    main()
