#!/usr/bin/python3
"""Compares l7gate's per-flow classification with ndpiReader's (nDPI's reference tool).

    /usr/bin/python3 tools/compare_ndpireader.py --l7gate BIN [--ref-dir DIR]
        [--min-agreement 99] [--report FILE] [--keep DIR] PCAP_OR_DIR...

For every capture (a directory stands for the *.pcap / *.pcapng files in it) l7gate replays
the capture into port 0 of two net_pcap vdevs with `--clock capture --flow-log` and its flow
log is matched against ndpiReader's flows:

  - with --ref-dir: the reference TSV DIR/<capture file name>.tsv, or DIR/*/<name>.tsv
    (columns as documented with the shared captures: section, l4, src_ip, src_port, dst_ip,
    dst_port, vlan, proto, category, risks, ...). A capture found in a directory without a
    reference is skipped with a warning; one named explicitly without a reference is an
    error;
  - without: `ndpiReader -i CAPTURE -v 2` is run here and its flow lines are parsed.

Flows are matched by (L4 protocol, the two endpoints unordered, VLAN id), where ndpiReader's
VLAN is the innermost 802.1Q id and l7gate's flow-log "vlan" is (outer_vid << 12 | inner_vid),
so its low 12 bits are compared. For each matched flow three things are compared: the
protocol name (e.g. "TLS.YouTube"), the category name and the set of risk names.

agreement = flows agreeing on all three / (flows in the reference + flows only l7gate logged).
A reference flow l7gate did not log counts as a disagreement; so does a flow only l7gate
logged. (ndpiReader ignores non-first IPv4 fragments and truncated packets, so a flow made
only of those exists on l7gate's side alone.)

Exit status: 0 when the total agreement is at least --min-agreement (percent, default 99) and
every l7gate run succeeded, 1 otherwise, 2 on bad arguments or a missing tool/reference.
"""

import argparse
import csv
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

NDPIREADER = "/usr/bin/ndpiReader"
CAPTURE_EXT = (".pcap", ".pcapng", ".cap")

# ndpiReader's ipProto2Name() for the protocols it names; everything else is the number.
IPPROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 58: "ICMPV6", 112: "VRRP"}

FLOW_LOG_FIELDS = (
    "ts_first", "ts_last", "vlan", "ip_version", "l4_proto", "src_ip", "src_port", "dst_ip",
    "dst_port", "l7_proto", "l7_proto_id", "category", "host", "ja3c", "ja3s", "tls_version",
    "risks", "risk_score", "risk_score_client", "risk_score_server", "c2s_packets",
    "c2s_bytes", "s2c_packets", "s2c_bytes", "verdict", "verdict_reason")

COMPARED = ("l7_proto", "category", "risks")


# ---------------------------------------------------------------------------------------------
# Normalisation


def norm_l4(value):
    """'TCP', 'udp', 'ICMPv6', '6', 17 -> ndpiReader's name ('TCP', 'UDP', 'ICMPV6', ...)."""
    s = str(value).strip()
    if s.isdigit():
        n = int(s)
        return IPPROTO_NAMES.get(n, str(n))
    s = s.upper()
    if s in ("IPV6-ICMP", "ICMP6"):
        return "ICMPV6"
    return s


def norm_ip(value):
    s = str(value).strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    try:
        return ipaddress.ip_address(s).compressed
    except ValueError:
        return s


def flow_key(l4, a_ip, a_port, b_ip, b_port, vlan):
    ends = sorted([(norm_ip(a_ip), int(a_port or 0)), (norm_ip(b_ip), int(b_port or 0))])
    return (norm_l4(l4), ends[0], ends[1], int(vlan or 0) & 0xFFF)


def _ep(ip, port):
    ip = norm_ip(ip)
    return ("[%s]:%s" % (ip, port)) if ":" in ip else ("%s:%s" % (ip, port))


def ref_str(f):
    """A reference flow as ndpiReader shows it: source (first sender) first."""
    return "%s %s -> %s%s" % (norm_l4(f["l4"]), _ep(f["src_ip"], f["src_port"]),
                              _ep(f["dst_ip"], f["dst_port"]),
                              (" vlan %s" % f["vlan"]) if f.get("vlan") else "")


def gate_str(f):
    vlan = int(f.get("vlan") or 0)
    return "%s %s -> %s%s" % (norm_l4(f["l4_proto"]), _ep(f["src_ip"], f["src_port"]),
                              _ep(f["dst_ip"], f["dst_port"]),
                              (" vlan %d (flow-log vlan %d)" % (vlan & 0xFFF, vlan)) if vlan else "")


def key_str(key):
    l4, a, b, vlan = key

    def ep(e):
        return ("[%s]:%d" % e) if ":" in e[0] else ("%s:%d" % e)
    return "%s %s <-> %s%s" % (l4, ep(a), ep(b), (" vlan %d" % vlan) if vlan else "")


# ---------------------------------------------------------------------------------------------
# ndpiReader output and reference TSVs

_FLOW_LINE = re.compile(
    r"^\t(?P<idx>\d+)\t(?P<l4>\S+) (?P<src>\S+) (?P<dir><->|->) (?P<dst>\S+) (?P<rest>\[.*)$")
_FLOW_HEAD = re.compile(
    r"^(?:\[VLAN: (?P<vlan>\d+)\])?(?:\[flowId: \d+\])?"
    r"\[proto: (?:(?P<tunnel>[A-Za-z0-9_-]+):)?(?P<proto_id>[0-9.]+)/(?P<proto>[^\]]*)\]"
    r"\[(?P<enc>Encrypted|ClearText)\]"
    r"\[Confidence: (?P<confidence>[^\]]*)\]"
    r"(?:\[cat: (?P<category>[^\]]*)/(?P<category_id>\d+)\])?"
    r"\[(?P<c2s_pkts>\d+) pkts/(?P<c2s_bytes>\d+) bytes (?:<->|->) "
    r"(?P<s2c_pkts>\d+) pkts/(?P<s2c_bytes>\d+) bytes\]")
_RISKS = re.compile(r"\[Risk: ((?:\*\* .+? \*\*)+)\]\[Risk Score: (\d+)\]")
_HOST = re.compile(r"\[Hostname/SNI: ([^\]]*)\]")


def _endpoint(s):
    host, _, port = s.rpartition(":")
    return norm_ip(host), int(port)


def parse_ndpireader(text):
    """Flow lines of `ndpiReader -v 2` output -> list of dicts (the reference TSV's columns)."""
    flows, section = [], "detected"
    for line in text.splitlines():
        if line.startswith("Undetected flows:"):
            section = "undetected"
            continue
        m = _FLOW_LINE.match(line)
        if not m:
            continue
        h = _FLOW_HEAD.match(m.group("rest"))
        if not h:
            raise ValueError("unparsable ndpiReader flow line: %r" % line)
        src_ip, src_port = _endpoint(m.group("src"))
        dst_ip, dst_port = _endpoint(m.group("dst"))
        r = _RISKS.search(m.group("rest"))
        host = _HOST.search(m.group("rest"))
        flows.append({
            "section": section, "idx": int(m.group("idx")), "l4": m.group("l4"),
            "src_ip": src_ip, "src_port": src_port, "dst_ip": dst_ip, "dst_port": dst_port,
            "bidir": m.group("dir") == "<->", "vlan": int(h.group("vlan") or 0),
            "tunnel": h.group("tunnel") or "", "proto_id": h.group("proto_id"),
            "proto": h.group("proto"), "confidence": h.group("confidence"),
            "encrypted": h.group("enc") == "Encrypted",
            "category": h.group("category") if h.group("category") is not None else "Unspecified",
            "c2s_pkts": int(h.group("c2s_pkts")), "c2s_bytes": int(h.group("c2s_bytes")),
            "s2c_pkts": int(h.group("s2c_pkts")), "s2c_bytes": int(h.group("s2c_bytes")),
            "hostname": host.group(1) if host else "",
            "risk_score": int(r.group(2)) if r else 0,
            "risks": re.findall(r"\*\* (.+?) \*\*", r.group(1)) if r else [],
        })
    return flows


def run_ndpireader(capture, exe=NDPIREADER, timeout=600):
    p = subprocess.run([exe, "-i", capture, "-v", "2"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors="replace", timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s -i %s -v 2 exited %d: %s" % (exe, capture, p.returncode,
                                                           p.stderr.strip()[-500:]))
    return parse_ndpireader(p.stdout)


def read_reference_tsv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    flows = []
    for r in rows:
        flows.append(dict(r, src_port=int(r["src_port"] or 0), dst_port=int(r["dst_port"] or 0),
                          vlan=int(r.get("vlan") or 0),
                          risks=[x for x in (r.get("risks") or "").split(";") if x]))
    return flows


# ---------------------------------------------------------------------------------------------
# l7gate

EMPTY_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def lcores_args():
    """`-l 0-1` when this process may run on CPUs 0 and 1, else an explicit --lcores map."""
    cpus = sorted(os.sched_getaffinity(0))
    if 0 in cpus and 1 in cpus:
        return ["-l", "0-1"]
    if len(cpus) >= 2:
        return ["--lcores=0@%d,1@%d" % (cpus[0], cpus[1])]
    return ["--lcores=0@%d,1@%d" % (cpus[0], cpus[0])]


class GateRun:
    def __init__(self):
        self.cmd, self.rc, self.stderr, self.flows, self.errors, self.stats = [], None, "", [], [], None

    @property
    def ok(self):
        return self.rc == 0 and not self.errors

    def describe(self):
        return "command: %s\nexit code: %s\nerrors: %s\nstderr (tail):\n%s" % (
            " ".join(self.cmd), self.rc, "; ".join(self.errors[:5]),
            "\n".join(self.stderr.splitlines()[-15:]))


_seq = [0]


def run_l7gate(binary, capture, workdir, extra_args=(), timeout=600, idle_exit_ms=500):
    """Replays `capture` into port 0 with the flow log on; returns a GateRun."""
    _seq[0] += 1
    prefix = "cmp%d_%d" % (os.getpid(), _seq[0])
    empty = os.path.join(workdir, "empty.pcap")
    if not os.path.exists(empty):
        with open(empty, "wb") as f:
            f.write(EMPTY_PCAP)
    base = os.path.join(workdir, "run%d" % _seq[0])
    flows_path, stats_path = base + "-flows.jsonl", base + "-stats.json"
    for p in (flows_path, stats_path):
        if os.path.exists(p):
            os.unlink(p)
    run = GateRun()
    run.flow_log, run.stats_path = flows_path, stats_path
    run.cmd = ([binary, "--no-huge", "--no-pci", "-m", "1024"] + lcores_args() +
               ["--log-level=*:error", "--file-prefix", prefix,
                "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (capture, base + "-out0.pcap"),
                "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (empty, base + "-out1.pcap"),
                "--", "--metrics", "off", "--clock", "capture", "--malformed", "pass",
                # Captures taken on hosts with offloads hold frames beyond 1,514 bytes, which
                # ndpiReader inspects: the largest MTU (frames above 9,022 bytes: over_mtu).
                "--mtu", "9000",
                # The encapsulations ndpiReader 4.2 looks into by default (no -t): PPPoE, MPLS,
                # IP-in-IP; it reports GTP-U and CAPWAP as the outer UDP flows, and so must we.
                "--decap", "ndpireader",
                "--idle-exit", str(idle_exit_ms), "--flow-log", flows_path,
                "--stats-json", stats_path] + list(extra_args))
    try:
        p = subprocess.run(run.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors="replace", timeout=timeout)
        run.rc, run.stderr = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        run.rc = "timeout after %ds (killed)" % timeout
        err = e.stderr or b""
        run.stderr = err.decode(errors="replace") if isinstance(err, bytes) else err
    except OSError as e:
        run.rc = "could not start (%s)" % e
    finally:
        shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
    if run.rc != 0:
        run.errors.append("l7gate exited %s" % run.rc)
    if os.path.exists(stats_path):
        try:
            with open(stats_path) as f:
                run.stats = json.load(f)
        except ValueError as e:
            run.errors.append("stats JSON does not parse: %s" % e)
    run.flows, errs = read_flow_log(flows_path)
    run.errors += errs
    return run


def read_flow_log(path):
    """JSON Lines flow log -> (flows, errors). Every line must be a JSON object."""
    if not os.path.exists(path):
        return [], ["no flow log written (%s)" % path]
    flows, errors = [], []
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                errors.append("flow log line %d is not JSON (%s): %.120s" % (n, e, line))
                continue
            if not isinstance(obj, dict):
                errors.append("flow log line %d is not a JSON object" % n)
                continue
            missing = [k for k in ("l4_proto", "src_ip", "src_port", "dst_ip", "dst_port",
                                   "vlan", "l7_proto", "category", "risks") if k not in obj]
            if missing:
                errors.append("flow log line %d lacks %s" % (n, ", ".join(missing)))
                continue
            flows.append(obj)
    return flows, errors


# ---------------------------------------------------------------------------------------------
# Comparison


def _ref_view(f):
    return {"l7_proto": f["proto"], "category": f["category"] or "Unspecified",
            "risks": sorted(set(f["risks"]))}


def _gate_view(f):
    risks = f.get("risks") or []
    if isinstance(risks, str):
        risks = [x for x in risks.split(";") if x]
    return {"l7_proto": f.get("l7_proto") or "", "category": f.get("category") or "Unspecified",
            "risks": sorted(set(risks))}


def compare(ref_flows, gate_flows):
    """Matches flows by key; returns a dict with matched / agree / disagreements / one-sided."""
    by_key = {}
    for f in ref_flows:
        k = flow_key(f["l4"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["vlan"])
        by_key.setdefault(k, ([], []))[0].append(f)
    for f in gate_flows:
        k = flow_key(f["l4_proto"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"],
                     f.get("vlan", 0))
        by_key.setdefault(k, ([], []))[1].append(f)
    res = {"ref": len(ref_flows), "gate": len(gate_flows), "matched": 0, "agree": 0,
           "disagreements": [], "ref_only": [], "gate_only": [], "tunnel_split": []}
    for k in sorted(by_key, key=key_str):
        refs, gates = by_key[k]
        for i in range(max(len(refs), len(gates))):
            if i >= len(gates):
                res["ref_only"].append((k, _ref_view(refs[i]), refs[i]))
                continue
            if i >= len(refs):
                if refs and "tunnel" in gates[i]:
                    # The same inner 5-tuple in another tunnel: ndpiReader's flow key has no
                    # tunnel and merges them, l7gate keeps them apart (README "Tunnels").
                    # Compared with the reference flow: it must agree all the same.
                    rv, gv = _ref_view(refs[-1]), _gate_view(gates[i])
                    diff = {fld: (rv[fld], gv[fld]) for fld in COMPARED if rv[fld] != gv[fld]}
                    if diff:
                        res["disagreements"].append((k, diff, refs[-1], gates[i]))
                        res["denominator_extra"] = res.get("denominator_extra", 0) + 1
                    else:
                        res["tunnel_split"].append((k, gv, gates[i]))
                    continue
                res["gate_only"].append((k, _gate_view(gates[i]), gates[i]))
                continue
            res["matched"] += 1
            rv, gv = _ref_view(refs[i]), _gate_view(gates[i])
            diff = {fld: (rv[fld], gv[fld]) for fld in COMPARED if rv[fld] != gv[fld]}
            if diff:
                res["disagreements"].append((k, diff, refs[i], gates[i]))
            else:
                res["agree"] += 1
    res["denominator"] = res["ref"] + len(res["gate_only"]) + res.get("denominator_extra", 0)
    return res


def pct(num, den):
    return 100.0 * num / den if den else 100.0


def fmt_val(v):
    if isinstance(v, list):
        return "{" + ", ".join(v) + "}" if v else "{}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# Main


def collect_captures(paths):
    """-> [(path, named explicitly)]; a directory stands for its capture files."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted((os.path.join(p, n), False) for n in os.listdir(p)
                          if n.endswith(CAPTURE_EXT) and os.path.isfile(os.path.join(p, n)))
        elif os.path.isfile(p):
            out.append((p, True))
        else:
            raise SystemExit("compare_ndpireader: %s: no such file or directory" % p)
    return out


def find_reference(ref_dir, name):
    """DIR/<name>.tsv, else DIR/<subdir>/<name>.tsv (e.g. reference/mix/mix-shared.pcap.tsv)."""
    cand = os.path.join(ref_dir, name + ".tsv")
    if os.path.isfile(cand):
        return cand
    for sub in sorted(os.listdir(ref_dir)):
        cand = os.path.join(ref_dir, sub, name + ".tsv")
        if os.path.isfile(cand):
            return cand
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--l7gate", required=True, help="the l7gate binary")
    ap.add_argument("--ref-dir", help="directory of reference TSVs (<capture name>.tsv); "
                    "default: run ndpiReader on each capture")
    ap.add_argument("--ndpireader", default=NDPIREADER, help="ndpiReader binary (%(default)s)")
    ap.add_argument("--min-agreement", type=float, default=99.0,
                    help="minimum total agreement in percent (default %(default)s)")
    ap.add_argument("--report", help="write a markdown report to this file")
    ap.add_argument("--keep", metavar="DIR", help="keep l7gate's flow logs, stats and outputs here")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per l7gate run")
    ap.add_argument("captures", nargs="+", metavar="PCAP_OR_DIR")
    args = ap.parse_args(argv)

    if not (os.path.isfile(args.l7gate) and os.access(args.l7gate, os.X_OK)):
        print("compare_ndpireader: l7gate binary %s not found or not executable" % args.l7gate,
              file=sys.stderr)
        return 2
    if not args.ref_dir and not os.access(args.ndpireader, os.X_OK):
        print("compare_ndpireader: %s not found (apt-get install libndpi-bin) and no --ref-dir"
              % args.ndpireader, file=sys.stderr)
        return 2
    captures = collect_captures(args.captures)
    if not captures:
        print("compare_ndpireader: no captures given", file=sys.stderr)
        return 2

    workdir = args.keep or tempfile.mkdtemp(prefix="l7gate-cmp-")
    os.makedirs(workdir, exist_ok=True)
    results, failures, skipped = [], [], []
    try:
        for cap, explicit in captures:
            name = os.path.basename(cap)
            if args.ref_dir:
                tsv = find_reference(args.ref_dir, name)
                if tsv is None:
                    if explicit:
                        print("compare_ndpireader: no reference %s.tsv under %s"
                              % (name, args.ref_dir), file=sys.stderr)
                        return 2
                    print("compare_ndpireader: skipping %s: no reference %s.tsv under %s"
                          % (cap, name, args.ref_dir), file=sys.stderr)
                    skipped.append(name)
                    continue
                ref = read_reference_tsv(tsv)
                ref_src = tsv
            else:
                ref = run_ndpireader(cap, args.ndpireader)
                ref_src = "%s -i %s -v 2" % (args.ndpireader, cap)
            run = run_l7gate(args.l7gate, os.path.abspath(cap), workdir, timeout=args.timeout)
            if not run.ok:
                failures.append((name, run))
            res = compare(ref, run.flows)
            res.update(name=name, ref_src=ref_src, run=run)
            results.append(res)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    if not results:
        print("compare_ndpireader: no capture with a reference to compare", file=sys.stderr)
        return 2
    text, md = render(results, failures, args)
    if skipped:
        text += "\nskipped (no reference): " + ", ".join(skipped)
        md += "\nSkipped (no reference TSV): " + ", ".join(skipped) + "\n"
    print(text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(md)
    total_agree = sum(r["agree"] for r in results)
    total_den = sum(r["denominator"] for r in results)
    agreement = pct(total_agree, total_den)
    if failures or agreement < args.min_agreement:
        return 1
    return 0


def render(results, failures, args):
    cols = ("capture", "ref flows", "l7gate flows", "matched", "agree", "disagree",
            "ref only", "l7gate only", "agreement")
    rows = []
    for r in results:
        rows.append((r["name"], r["ref"], r["gate"], r["matched"], r["agree"],
                     len(r["disagreements"]), len(r["ref_only"]), len(r["gate_only"]),
                     "%.1f%%" % pct(r["agree"], r["denominator"])))
    tot = [sum(r[i] for r in rows) for i in range(1, 8)]
    total_den = sum(r["denominator"] for r in results)
    agreement = pct(tot[3], total_den)
    rows.append(("TOTAL",) + tuple(tot) + ("%.2f%%" % agreement,))
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]

    def line(vals):
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                         for i, (v, w) in enumerate(zip(vals, widths)))
    out = [line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows[:-1]] + \
        [line(["-" * w for w in widths]), line(rows[-1])]
    verdict = "PASS" if (not failures and agreement >= args.min_agreement) else "FAIL"
    out.append("")
    out.append("agreement %.2f%% (%d of %d flows; minimum %.2f%%): %s%s" % (
        agreement, tot[3], total_den, args.min_agreement, verdict,
        "; %d l7gate run(s) failed" % len(failures) if failures else ""))

    md = ["# l7gate vs ndpiReader", "",
          "Reference: %s. Compared per flow: protocol name, category, risk set. "
          "Agreement = flows agreeing on all three / (reference flows + flows only l7gate "
          "logged)." % ("TSVs in `%s`" % args.ref_dir if args.ref_dir else "`ndpiReader -v 2` run live"),
          "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    md += ["", "**%s**: agreement %.2f%% (minimum %.2f%%)." % (verdict, agreement, args.min_agreement)]

    for name, run in failures:
        out += ["", "l7gate run FAILED for %s:" % name, run.describe()]
        md += ["", "## l7gate run failed: %s" % name, "", "```", run.describe(), "```"]

    for r in results:
        items = []
        for k, diff, rf, _ in r["disagreements"]:
            items.append("%s: %s" % (ref_str(rf), "; ".join(
                "%s ref=%s l7gate=%s" % (fld, fmt_val(a), fmt_val(b)) for fld, (a, b) in diff.items())))
        for k, v, rf in r["ref_only"]:
            items.append("%s: only in ref (%s, %s, risks %s)" % (
                ref_str(rf), v["l7_proto"], v["category"], fmt_val(v["risks"])))
        for k, v, gf in r["gate_only"]:
            items.append("%s: only in l7gate (%s, %s, risks %s)" % (
                gate_str(gf), v["l7_proto"], v["category"], fmt_val(v["risks"])))
        for k, v, gf in r.get("tunnel_split", []):
            items.append("%s: one more l7gate flow, the same inner 5-tuple in another %s tunnel (ndpiReader "
                         "merges them; agrees: %s, %s, risks %s; not counted)" % (
                             gate_str(gf), gf.get("encap", "?"), v["l7_proto"], v["category"], fmt_val(v["risks"])))
        if items:
            out += ["", "%s:" % r["name"]] + ["  " + i for i in items]
            md += ["", "## %s" % r["name"], ""] + ["- `%s`" % i.replace("`", "'") for i in items]
    return "\n".join(out), "\n".join(md) + "\n"


if __name__ == "__main__":
    sys.exit(main())
