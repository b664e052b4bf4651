#!/usr/bin/python3
"""Parsing and reporting for perf/run.sh (not meant to be run by hand).

    bench.py parse-l7gate MIX RUN STATS_JSON STDOUT MIXJSON [replay|fresh|single-pass]
    bench.py parse-testpmd MIX RUN STDOUT MIXJSON
    bench.py parse-ndpireader MIX RUN STDOUT MIXJSON
    bench.py parse-suricata MIX RUN TOOL EVE_JSON T_START T_STOP MIXJSON
    bench.py parse-file MIX RUN l7gate|suricata HEAD_STATS T0 T1 FULL_STATS T0 T1 MIXJSON
    bench.py report RAW_JSONL META_JSON

parse-* print one JSON object (one run of one tool on one mix) on stdout; run.sh appends it to
RAW_JSONL. report prints the Markdown results (tables + raw figures) on stdout.

Definitions (the same for every tool, so the ratios compare like with like):
  Mpps      packets / second on the one worker (forwarding) core, wall clock.
            l7gate: totals.rx_packets / elapsed_seconds of its stats JSON (whole run, including
            its first pass over the capture, when every flow is new);
            testpmd: mean of its per-interval "Rx-pps" of port 0 (--stats-period 1), leaving
            out the first display (no interval yet); run.sh lets testpmd forward for at least
            3 s so that there are intervals;
            ndpiReader: sum of packets / sum of per-loop processing times (packets / "nDPI
            throughput") over its loops after the first (each loop is a fresh nDPI module);
            Suricata: its own decoder.pkts (final stats record of eve.json, written at
            shutdown) / the time from its "Engine started" line to the SIGINT.
  file      (l7gate-file, suricata-file) one pass over the one-pass capture read from the
            file, and one over its first 10%: new flows/s = (flows of the whole - flows of the
            head) / (wall time of the whole - wall time of the head), each tool's own flow
            count (l7gate flows.created, Suricata flow.total); Mpps likewise with packets.
  Gbit/s    Mpps x the capture's average frame size x 8 (Ethernet frames without CRC,
            preamble or gap: the same bytes for every tool).
  cyc/pkt   l7gate: workers[].busy_cycles / rx_packets (TSC cycles from the end of the RX
            burst to the end of the TX burst: parse, flow, classify, forward);
            testpmd: its "CPU cycles/packet" (--record-core-cycles: RX burst to TX burst);
            ndpiReader: tsc_hz / pps (its whole per-packet path, pcap read included).
  loop cyc  tsc_hz / pps: every cycle of the core per packet, RX included (infinite_rx copies
            each frame out of the preloaded capture into a fresh mbuf on RX).
"""

import json
import re
import statistics
import sys


def _mix_info(path):
    with open(path) as f:
        return json.load(f)


def _num(s):
    return float(s.replace(",", ""))


def parse_l7gate(mix, run, stats_path, stdout_path, mix_json, single=False, fresh=False,
                 tool="l7gate"):
    with open(stats_path) as f:
        st = json.load(f)
    info = _mix_info(mix_json)
    w = st["workers"]
    rx = st["totals"]["rx_packets"]
    el = st["elapsed_seconds"]
    busy = sum(x["busy_cycles"] for x in w)
    cls = st.get("classification", {})
    per_sec = []
    with open(stdout_path, errors="replace") as f:
        for line in f:
            m = re.match(r"\[\s*([\d.]+) s\] rx (\d+) pps", line)
            if m:
                per_sec.append(int(m.group(2)))
    tsc = st["tsc_hz"]
    out = {
        "tool": "l7gate-1pass" if single else tool, "mix": mix, "run": run,
        "tsc_hz": tsc, "rx_packets": rx, "elapsed_s": el,
        "dropped": st["totals"].get("dropped", 0),
        "busy_cycles": busy,
        "cyc_pkt": busy / rx if rx else None,
        "ndpi_packets": cls.get("ndpi_packets"),
        "ndpi_cyc_pkt": cls.get("ndpi_cycles_per_packet"),
        "flows_created": st["flows"]["created"],
        "per_second_pps": per_sec,
        "avg_frame": info["avg_frame_bytes"],
    }
    if single:
        # One pass over the capture (no infinite_rx): RX reads the file, so wall time says
        # little; the processing cost per packet on fresh flows is the figure.
        out["pps"] = tsc / out["cyc_pkt"] if rx else None
        out["new_flows_s"] = st["flows"]["created"] / (busy / tsc) if busy else None
        out["loop_cyc"] = None
    elif fresh and len(per_sec) >= 2:
        # --bench-fresh-flows: every pass new flows, millions of them flushed at the end (not
        # part of the rate): the mean of the per-second RX rates after the first second.
        steady = per_sec[1:]
        out["pps"] = sum(steady) / len(steady)
        out["new_flows_s"] = out["pps"] * info["flows"] / info["packets"]
        out["loop_cyc"] = tsc / out["pps"] if out["pps"] else None
        out["table_full"] = st["flows"].get("table_full", 0)
        out["fresh"] = True
        if out["table_full"]:
            # The table filled: its packets took the cheap table-full path, not flow setup.
            # Not a steady-state figure: kept in the raw runs, left out of the tables.
            out["invalid"] = "table_full %d" % out["table_full"]
            out["pps"] = None
            out["new_flows_s"] = None
            out["cyc_pkt"] = None
            out["loop_cyc"] = None
    else:
        out["pps"] = rx / el if el else None
        out["new_flows_s"] = st["flows"]["created"] / el if el else None
        out["loop_cyc"] = tsc * el / rx if rx else None
    return out


def parse_testpmd(mix, run, stdout_path, mix_json):
    info = _mix_info(mix_json)
    with open(stdout_path, errors="replace") as f:
        text = f.read()
    port = None
    pps0 = []
    for line in text.splitlines():
        m = re.search(r"NIC statistics for port (\d+)", line)
        if m:
            port = int(m.group(1))
            continue
        m = re.match(r"\s*Rx-pps:\s+(\d+)", line)
        if m and port == 0:
            pps0.append(int(m.group(1)))
    # First display: no previous one, testpmd prints 0 (or a partial interval): leave it out.
    samples = [p for p in pps0[1:] if p > 0]
    m = re.search(r"CPU cycles/packet=([\d.]+).*?at (\d+) MHz", text)
    cyc = float(m.group(1)) if m else None
    tsc = int(m.group(2)) * 1000000 if m else None
    m = re.search(r"Accumulated forward statistics.*?RX-packets:\s+(\d+)", text, re.S)
    total = int(m.group(1)) if m else None
    pps = statistics.mean(samples) if samples else None
    return {
        "tool": "testpmd", "mix": mix, "run": run, "pps": pps, "tsc_hz": tsc,
        "rx_packets": total, "cyc_pkt": cyc, "per_second_pps": samples,
        "loop_cyc": (tsc / pps) if (tsc and pps) else None,
        "new_flows_s": None, "avg_frame": info["avg_frame_bytes"],
    }


def _eve_last_stats(path):
    last = None
    with open(path, errors="replace") as f:
        for line in f:
            if '"stats"' not in line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a record torn by the SIGINT
            if ev.get("event_type") == "stats":
                last = ev["stats"]
    if last is None:
        raise SystemExit("bench.py: no stats record in %s" % path)
    return last


def parse_suricata(mix, run, tool, eve_path, t0, t1, mix_json):
    info = _mix_info(mix_json)
    st = _eve_last_stats(eve_path)
    pk = st["decoder"]["pkts"]
    window = float(t1) - float(t0)
    det = st.get("detect", {})
    eng = (det.get("engines") or [{}])[0]
    pps = pk / window if window > 0 else None
    return {
        "tool": tool, "mix": mix, "run": run, "pps": pps, "rx_packets": pk,
        "elapsed_s": window, "tsc_hz": None, "cyc_pkt": None, "loop_cyc": None,
        "new_flows_s": st["flow"]["total"] / window if window > 0 else None,
        "flows": st["flow"]["total"], "alerts": det.get("alert", 0),
        "rules_loaded": eng.get("rules_loaded", 0), "rules_failed": eng.get("rules_failed", 0),
        "drops": st.get("capture", {}).get("dpdk", {}).get("imissed", 0),
        "app_layer_flows": {k: v for k, v in st.get("app_layer", {}).get("flow", {}).items() if v},
        "avg_frame": info["avg_frame_bytes"],
    }


def _file_counts(who, path):
    """(packets, flows) one tool saw in one pass over a capture."""
    if who == "suricata":
        st = _eve_last_stats(path)
        return st["decoder"]["pkts"], st["flow"]["total"]
    with open(path) as f:
        st = json.load(f)
    if st["flows"].get("table_full", 0):
        raise SystemExit("bench.py: l7gate's flow table filled during the one-pass run (%s)" % path)
    return st["totals"]["rx_packets"], st["flows"]["created"]


def parse_file(mix, run, who, head, h0, h1, full, f0, f1, mix_json):
    info = _mix_info(mix_json)
    hp, hf = _file_counts(who, head)
    fp, ff = _file_counts(who, full)
    th = float(h1) - float(h0)
    tf = float(f1) - float(f0)
    dt = tf - th
    return {
        "tool": who + "-file", "mix": mix, "run": run,
        "pps": (fp - hp) / dt if dt > 0 else None,
        "new_flows_s": (ff - hf) / dt if dt > 0 else None,
        "rx_packets": fp, "flows": ff, "flows_head": hf, "wall_s": tf, "wall_head_s": th,
        "tsc_hz": None, "cyc_pkt": None, "loop_cyc": None,
        "avg_frame": info["avg_frame_bytes"],
    }


_UNIT = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_ndpireader(mix, run, stdout_path, mix_json, tsc_hz=None):
    info = _mix_info(mix_json)
    with open(stdout_path, errors="replace") as f:
        text = f.read()
    loops = []
    cur = {}
    for line in text.splitlines():
        m = re.search(r"IP packets:\s+(\d+)\s+of\s+(\d+) packets total", line)
        if m:
            cur["packets"] = int(m.group(2))
        m = re.search(r"Unique flows:\s+(\d+)", line)
        if m:
            cur["flows"] = int(m.group(1))
        m = re.search(r"nDPI throughput:\s+([\d.]+)\s*([KMG]?) pps", line)
        if m:
            cur["pps"] = float(m.group(1)) * _UNIT[m.group(2)]
            loops.append(cur)
            cur = {}
    use = loops[1:] if len(loops) > 1 else loops
    pk = sum(x["packets"] for x in use)
    t = sum(x["packets"] / x["pps"] for x in use if x["pps"] > 0)
    pps = pk / t if t > 0 else None
    flows = sum(x.get("flows", 0) for x in use)
    return {
        "tool": "ndpiReader", "mix": mix, "run": run, "pps": pps, "loops": len(loops),
        "loops_used": len(use), "per_loop_pps": [x["pps"] for x in loops],
        "rx_packets": pk, "tsc_hz": tsc_hz,
        "cyc_pkt": (tsc_hz / pps) if (tsc_hz and pps) else None,
        "loop_cyc": (tsc_hz / pps) if (tsc_hz and pps) else None,
        "new_flows_s": flows / t if t > 0 else None,
        "avg_frame": info["avg_frame_bytes"],
    }


# ---------------------------------------------------------------------------------------------
# report

TOOLS = ["testpmd", "l7gate", "suricata", "l7gate-policy", "suricata-policy", "ndpiReader",
         "l7gate-1pass", "l7gate-file", "suricata-file"]
TOOL_LABEL = {
    "testpmd": "testpmd io (I/O limit)",
    "l7gate": "l7gate (replay, known flows)",
    "ndpiReader": "ndpiReader (fresh flows every loop)",
    "l7gate-1pass": "l7gate one pass (fresh flows)",
    "suricata": "Suricata 7 IDS, no rules",
    "l7gate-policy": "l7gate, shipped policy",
    "suricata-policy": "Suricata 7 IDS, the shipped policy as rules",
    "l7gate-file": "l7gate, one-pass capture read from the file",
    "suricata-file": "Suricata 7 -r, one-pass capture read from the file",
}
# "l7gate / this" compares each peer with the l7gate run doing the same work, same run number.
PEER_OF = {"testpmd": "l7gate", "ndpiReader": "l7gate", "suricata": "l7gate",
           "suricata-policy": "l7gate-policy", "suricata-file": "l7gate-file"}


def _mmm(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return fmt % vals[0]
    return "%s / **%s** / %s" % (fmt % min(vals), fmt % statistics.median(vals), fmt % max(vals))


def _med(vals, fmt):
    vals = [v for v in vals if v is not None]
    return fmt % statistics.median(vals) if vals else "-"


def report(raw_path, meta_path):
    with open(meta_path) as f:
        meta = json.load(f)
    rows = []
    with open(raw_path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    tsc = next((r["tsc_hz"] for r in rows if r["tool"] == "l7gate" and r.get("tsc_hz")), None)
    # ndpiReader's cycles need the TSC rate, which only l7gate and testpmd print.
    for r in rows:
        if r["tool"] == "ndpiReader" and tsc and r.get("pps"):
            r["tsc_hz"] = tsc
            r["cyc_pkt"] = r["loop_cyc"] = tsc / r["pps"]
    by = {}
    for r in rows:
        by.setdefault((r["mix"], r["tool"]), {})[r["run"]] = r

    out = []
    p = out.append
    p("## Results (%s)" % meta.get("date", ""))
    p("")
    p("Machine: %s, %s logical cores, TSC %s Hz; %s. Runs: %s x %s s per tool and mix, "
      "alternating (%s); min / **median** / max over the runs."
      % (meta.get("cpu"), meta.get("cores"), tsc, meta.get("memory_mode"), meta.get("runs"),
         meta.get("duration"), ", ".join(meta.get("order", []))))
    p("")
    for mix in meta["mixes"]:
        m = meta["mix_info"].get(mix, {})
        nflows = m.get("flows")
        if nflows is None:  # a real capture: as many as l7gate's one pass created
            fl = [r["flows_created"] for r in rows if r["mix"] == mix and r["tool"] == "l7gate-1pass"]
            nflows = "%d (l7gate's count)" % statistics.median(fl) if fl else "?"
        p("### %s: %s packets, %s flows, %s B/frame on average" %
          (mix, m.get("packets"), nflows, m.get("avg_frame_bytes")))
        p("")
        p("| tool | Mpps per core | Gbit/s | cyc/pkt | loop cyc/pkt | nDPI cyc/nDPI pkt | "
          "new flows/s | l7gate / this |")
        p("|---|---|---|---|---|---|---|---|")
        l7 = by.get((mix, "l7gate"), {})
        for tool in TOOLS:
            runs = by.get((mix, tool))
            if not runs:
                continue
            rs = [runs[k] for k in sorted(runs)]
            mpps = [r["pps"] / 1e6 if r.get("pps") else None for r in rs]
            gbps = [r["pps"] * r["avg_frame"] * 8 / 1e9 if r.get("pps") else None for r in rs]
            ratio = "-"
            if tool in PEER_OF:
                ours = by.get((mix, PEER_OF[tool]), {})
                key = "new_flows_s" if tool.endswith("-file") else "pps"
                pairs = [ours[k][key] / runs[k][key] for k in sorted(runs)
                         if k in ours and ours[k].get(key) and runs[k].get(key)]
                ratio = _mmm(pairs, "%.2f")
            ndpi = _med([r.get("ndpi_cyc_pkt") for r in rs], "%.0f") if tool.startswith("l7gate") else "-"
            nf = _mmm([r.get("new_flows_s") for r in rs], "%.0f")
            label = TOOL_LABEL[tool]
            if any(r.get("fresh") for r in rs):
                label = "l7gate (--bench-fresh-flows: new flows every pass)"
            p("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, _mmm(mpps, "%.2f"), _mmm(gbps, "%.2f"),
                _mmm([r.get("cyc_pkt") for r in rs], "%.0f"),
                _med([r.get("loop_cyc") for r in rs], "%.0f"), ndpi, nf, ratio))
        bad = [r for r in by.get((mix, "l7gate"), {}).values() if r.get("invalid")]
        if bad:
            p("")
            p("Left out of the l7gate row: %d of its runs, whose flow table filled (%s): their "
              "packets took the table-full path, not flow setup." % (
                  len(bad), ", ".join("run %d: %s" % (r["run"], r["invalid"]) for r in bad)))
        if mix == "flood" and l7:
            # Every new flow of a pass is a bare SYN (the flood's and each TCP connection's
            # own); every other packet belongs to a connection's flow of the first pass. The
            # share of SYNs is l7gate's own count: flows created per packet received.
            syn = [r["pps"] * r["flows_created"] / r["rx_packets"] / 1e6 for r in l7.values()
                   if r.get("pps") and r.get("rx_packets")]
            known = [r["pps"] * (1 - r["flows_created"] / r["rx_packets"]) / 1e6 for r in l7.values()
                     if r.get("pps") and r.get("rx_packets")]
            p("")
            p("SYN flood while established flows keep passing: %s Mpps of SYNs, each a new "
              "half-open flow created and expired, while %s Mpps of the connections' other "
              "packets pass as known flows (l7gate dropped %s packets in all)." % (
                  _mmm(syn, "%.2f"), _mmm(known, "%.2f"),
                  sum(r.get("dropped", 0) for r in l7.values())))
        one = by.get((mix, "l7gate-1pass"), {})
        nd = by.get((mix, "ndpiReader"), {})
        pairs = [one[k]["pps"] / nd[k]["pps"] for k in sorted(nd)
                 if k in one and one[k].get("pps") and nd[k].get("pps")]
        if pairs:
            p("")
            p("Fresh flows against fresh flows: l7gate one pass (processing only, tsc_hz / busy "
              "cycles per packet) / ndpiReader (pcap read included): %s." % _mmm(pairs, "%.2f"))
        p("")
    if meta.get("skipped"):
        for s in meta["skipped"]:
            p("- skipped: %s" % s)
        p("")
    p("Columns: see perf/README.md. cyc/pkt of l7gate is busy_cycles / rx_packets (RX burst "
      "excluded), of testpmd its --record-core-cycles figure (RX burst included), of "
      "ndpiReader tsc_hz / pps. loop cyc/pkt = tsc_hz / Mpps for every tool. Gbit/s counts "
      "Ethernet frames without CRC, preamble and gap.")
    p("")
    p("newflow, attack and syn: l7gate runs with --bench-fresh-flows (addresses rewritten on "
      "every pass of the replay, 1-2 s idle timeouts): its steady state on new flows, expiry "
      "included; its Mpps is the mean per-second RX rate after the first second, its new "
      "flows/s that rate times the mix's flows per packet. flood: the attack capture with only "
      "its bare SYNs rewritten (--bench-fresh-syns).")
    if any(r["tool"].startswith("suricata") for r in rows):
        p("Suricata (--peers suricata): perf/suricata/suricata.yaml, IDS mode (copy-mode none: "
          "it receives and never transmits, which spares it the TX work l7gate does), one "
          "worker thread on core 1, stream and TLS/SSH bypass, no checksum checks, logging off "
          "but stats. Its Mpps: decoder.pkts / the time from \"Engine started\" to the "
          "SIGINT. suricata-policy: config/demo-policy.yaml's hostname, address and protocol "
          "markers as rules (perf/suricata/policy_rules.py); categories, risks, the score and "
          "shaping have no Suricata equivalent there (not the same work). *-file: the "
          "one-pass capture read from the file, new flows/s from the difference with its "
          "first 10% (start-up cancels out).")
        p("")
    p("<details><summary>Raw per-run figures</summary>")
    p("")
    p("| mix | tool | run | Mpps | cyc/pkt | per-second / per-loop Mpps |")
    p("|---|---|---|---|---|---|")
    for r in rows:
        series = r.get("per_second_pps") or r.get("per_loop_pps") or []
        p("| %s | %s | %d | %s | %s | %s |" % (
            r["mix"], r["tool"], r["run"], "%.3f" % (r["pps"] / 1e6) if r.get("pps") else "-",
            "%.0f" % r["cyc_pkt"] if r.get("cyc_pkt") else "-",
            " ".join("%.2f" % (x / 1e6) for x in series[:12])))
    p("")
    p("</details>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "parse-l7gate":
        mode = argv[7] if len(argv) > 7 else "replay"
        print(json.dumps(parse_l7gate(argv[2], int(argv[3]), argv[4], argv[5], argv[6],
                                      mode == "single-pass", mode == "fresh",
                                      argv[8] if len(argv) > 8 else "l7gate")))
    elif cmd == "parse-suricata":
        print(json.dumps(parse_suricata(argv[2], int(argv[3]), argv[4], argv[5], argv[6],
                                        argv[7], argv[8])))
    elif cmd == "parse-file":
        print(json.dumps(parse_file(argv[2], int(argv[3]), argv[4], *argv[5:12])))
    elif cmd == "parse-testpmd":
        print(json.dumps(parse_testpmd(argv[2], int(argv[3]), argv[4], argv[5])))
    elif cmd == "parse-ndpireader":
        print(json.dumps(parse_ndpireader(argv[2], int(argv[3]), argv[4], argv[5])))
    elif cmd == "report":
        sys.stdout.write(report(argv[2], argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
