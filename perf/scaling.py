#!/usr/bin/python3
"""Two workers against one: total Mpps, raw and normalised by busy cycles.

    perf/scaling.py [--runs N] [--duration S] [--no-build]      (as root)

The established mix is replayed endlessly (net_pcap infinite_rx into net_null) under a
pass-all policy by one worker, then by two (`--rxq 2 --rss driver`, the capture on both RX
queues, so each worker has the same 10k flows in its own table). Runs alternate.

- raw scaling = total Mpps with two workers / Mpps with one;
- normalised scaling = sum over workers of packets per busy second / the same for one
  worker, i.e. 2 x (cycles per packet with one) / (cycles per packet with two). This VM has
  2 vCPUs: with two workers the control thread shares CPU 0 with worker 1 (lcores
  0@0,1@0,2@1; it sleeps between 5 ms ticks), so the raw figure also says how much CPU that
  worker got; the normalised one says whether a worker's per-packet cost grows when another
  runs beside it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enforce  # noqa: E402


def main():
    a = enforce.parse_args(runs=5)
    binary, pcap, packets, work, mem = enforce.prepare("scaling.py", a.no_build)
    one, two = [], []
    for run in range(1, a.runs + 1):
        order = [1, 2] if run % 2 else [2, 1]
        for w in order:
            r = enforce.run_one(binary, pcap, packets, "pass-%dw" % w, "pass", w, a.duration, work,
                                "scale-%d-%d" % (w, run), mem)
            (one if w == 1 else two).append(r)
            print("  run %d %d worker(s): %.3f Mpps per worker, %.0f cyc/pkt" % (
                run, w, r["mpps_per_worker"], r["cyc_pkt"]), file=sys.stderr)
    raw = [2 * t["mpps_per_worker"] / o["mpps_per_worker"] for o, t in zip(one, two)]
    norm = [2 * o["cyc_pkt"] / t["cyc_pkt"] for o, t in zip(one, two)]

    mmm = enforce.mmm
    print("| workers | total Mpps | cyc/pkt |")
    print("|---|---|---|")
    print("| 1 | %s | %s |" % (mmm([o["mpps_per_worker"] for o in one], "%.3f"), mmm([o["cyc_pkt"] for o in one], "%.0f")))
    print("| 2 | %s | %s |" % (mmm([2 * t["mpps_per_worker"] for t in two], "%.3f"), mmm([t["cyc_pkt"] for t in two], "%.0f")))
    print("\nraw scaling (paired runs) %s; normalised by busy cycles %s (min / median / max)" % (mmm(raw, "%.2f"), mmm(norm, "%.2f")))
    print("command: perf/scaling.py --runs %d --duration %d; two workers: %s" % (a.runs, a.duration, two[0]["cmd"]))


if __name__ == "__main__":
    main()
