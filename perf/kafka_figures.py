#!/usr/bin/python3
"""Figures for perf/kafka.sh.

    kafka_figures.py acked PORT SECONDS
        scrapes l7gate's /metrics twice while the traffic runs (from the first acked record to
        1 s before the end) and prints the Kafka sink's acked records per second in between
        (records flushed at stop are not part of it; none on a replay of established flows,
        whose flows all end at stop)
    kafka_figures.py run MIX MODE RUN STATS.json STDOUT.txt ACKED FRESH
        one run's figures as a JSON line
    kafka_figures.py table RESULTS.jsonl RUNS SECONDS
        the markdown table: forwarding rate on/off and the export rate
"""

import json
import re
import statistics
import sys
import time
import urllib.request


def acked(port, duration):
    t_end = time.monotonic() + duration

    def scrape():
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
            m = re.search(r'^l7gate_flow_records_written_total\{sink="kafka"\} (\S+)$', r.read().decode(), re.M)
        return (float(m.group(1)) if m else None), time.monotonic()

    first = None
    # From the first acked record (the endpoint is up once the ports are; flows end a second
    # or two after they began) to 1 s before the end.
    while (first is None or not first[0]) and time.monotonic() < t_end - 2:
        try:
            first = scrape()
        except OSError:
            pass
        time.sleep(0.1)
    time.sleep(max(0.0, t_end - time.monotonic() - 1.0))
    try:
        last = scrape()
    except OSError:
        return
    if first is not None and first[0] is not None and last[0] is not None:
        print("%.0f" % ((last[0] - first[0]) / (last[1] - first[1])))


def run(mix, mode, run_no, stats, stdout, acked_path, fresh):
    with open(stats) as f:
        st = json.load(f)
    el = st["elapsed_seconds"]
    per_sec = []
    with open(stdout, errors="replace") as f:
        for line in f:
            m = re.match(r"\[\s*[\d.]+ s\] rx (\d+) pps", line)
            if m:
                per_sec.append(int(m.group(1)))
    # As perf/bench.py: a fresh-flow run flushes millions of flows at stop, so its rate is the
    # mean of the per-second RX rates after the first second; a replay's is the whole run's.
    if fresh == "1" and len(per_sec) >= 2:
        pps = sum(per_sec[1:]) / len(per_sec[1:])
    else:
        pps = st["totals"]["rx_packets"] / el
    r = {"mix": mix, "mode": mode, "run": int(run_no), "mpps": pps / 1e6, "elapsed_s": el}
    k = st.get("flow_log", {}).get("sinks", {}).get("kafka")
    if k is not None:
        fl = st["flow_log"]
        with open(acked_path) as f:
            a = f.read().strip()
        r.update(produced=fl["records"] + fl["lost"], acked=k["written"], lost=k["lost"],
                 acked_per_s=float(a) if a else None)
    print(json.dumps(r))


def table(path, runs, seconds):
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    print("Kafka export on vs off (%s runs x %s s per side and mix, alternating; librdkafka's mock "
          "cluster on 127.0.0.1, pinned to core 0 with the control thread)" % (runs, seconds))
    print()
    print("| mix | off Mpps (median) | on Mpps (median) | on/off min | **median** | max "
          "| Kafka acked records/s while the traffic ran (median) | records produced | lost by cause (all runs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mix in dict.fromkeys(r["mix"] for r in rows):
        off = {r["run"]: r for r in rows if r["mix"] == mix and r["mode"] == "off"}
        on = {r["run"]: r for r in rows if r["mix"] == mix and r["mode"] == "on"}
        ratios = sorted(on[k]["mpps"] / off[k]["mpps"] for k in on if k in off)
        lost = {}
        for r in on.values():
            for c, v in r["lost"].items():
                lost[c] = lost.get(c, 0) + v
        rates = [r["acked_per_s"] for r in on.values() if r.get("acked_per_s") is not None]
        print("| %s | %.3f | %.3f | %.3f | **%.3f** | %.3f | %s | %d | %s |" % (
            mix, statistics.median(r["mpps"] for r in off.values()),
            statistics.median(r["mpps"] for r in on.values()),
            ratios[0], statistics.median(ratios), ratios[-1],
            "%.0f" % statistics.median(rates) if rates else "-",
            sum(r["produced"] for r in on.values()),
            ", ".join("%s %d" % kv for kv in lost.items())))
    log_rows = [r for r in rows if r["mode"] == "log"]
    if log_rows:
        print()
        print("The record stream alone (--flow-log /dev/null, same runs): log/off and on/log ratios, min / median / max")
        print()
        print("| mix | log Mpps (median) | log/off min | **median** | max | on/log min | **median** | max |")
        print("|---|---|---|---|---|---|---|---|")
        for mix in dict.fromkeys(r["mix"] for r in log_rows):
            by = {m: {r["run"]: r["mpps"] for r in rows if r["mix"] == mix and r["mode"] == m} for m in ("off", "on", "log")}
            lo = sorted(by["log"][k] / by["off"][k] for k in by["log"] if k in by["off"])
            ol = sorted(by["on"][k] / by["log"][k] for k in by["log"] if k in by["on"])
            print("| %s | %.3f | %.3f | **%.3f** | %.3f | %.3f | **%.3f** | %.3f |" % (
                mix, statistics.median(by["log"].values()), lo[0], statistics.median(lo), lo[-1],
                ol[0], statistics.median(ol), ol[-1]))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "acked":
        acked(int(sys.argv[2]), float(sys.argv[3]))
    elif cmd == "run":
        run(*sys.argv[2:9])
    elif cmd == "table":
        table(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
