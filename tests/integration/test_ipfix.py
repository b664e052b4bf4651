#!/usr/bin/python3
"""Integration tests: IPFIX export (--ipfix, issue 21) checked against real collectors.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_ipfix.py -v

One l7gate run with --flow-log and --ipfix serves every decoder: the generated l7 traffic
(17 flows, IPv4 and IPv6, TLS/HTTP/QUIC/DNS/SSH/BitTorrent/ICMP, risks, SNI, JA3) plus, when
$L7GATE_PCAPS names the shared captures, their classic-pcap files, split over two workers
by flow (so two observation domains). The test receives the UDP datagrams itself and then
replays them, byte for byte, to each collector:

- python3-ipfix decodes every record; each is compared with the flow log, field by field
  (addresses, ports, protocol, VLAN, counters both ways, start/end ms, end reason, ntop's
  L7 elements, l7gate's own); sequence numbers, domains, the MTU and the template refresh
  are checked on the messages.
- pmacct's nfacctd (print plugin, JSON) with ntop's and l7gate's elements declared in its
  primitives file: its records are compared with the flow log field by field.
- nfdump's nfcapd stores the stream; `nfdump -o json` gives the standard fields back.
- A collector that starts late (the stream from the second message of each domain on)
  decodes every record from the next template refresh on.
- A collector that is down (a closed port): l7gate counts send errors, exits normally, and
  forwards exactly what the run without --ipfix forwards, in comparable time.
Collectors missing (pmacct, nfdump, python3-ipfix) skip their test with the package name.
"""

import collections
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import check_generated, generate_module_traffic, require_binary, wait_for  # noqa: E402

PCAPS = os.environ.get("L7GATE_PCAPS", "")
MTU = 1000            # --ipfix-mtu: below the default, so that messages split
TEMPLATE_MSGS = 3     # --ipfix-template-messages: refreshes show up in a short stream
DOMAIN = 7            # --ipfix-domain
SHARED_BUDGET = 2 << 20  # bytes of shared captures replayed at most (cheap)

NTOP_SPECS = [
    "L7_PROTO(35632/118)<unsigned16>[2]", "L7_PROTO_NAME(35632/119)<string>[65535]",
    "L7_PROTO_CATEGORY(35632/501)<string>[65535]", "L7_PROTO_RISK(35632/509)<unsigned32>[4]",
    "L7_PROTO_RISK_NAME(35632/510)<string>[65535]", "L7_RISK_SCORE(35632/527)<unsigned16>[2]",
    "l7gateRiskBitmap(32473/1)<unsigned64>[8]", "l7gateRiskExceptedBitmap(32473/2)<unsigned64>[8]",
    "l7gateVerdict(32473/3)<string>[65535]", "l7gateVerdictReason(32473/4)<string>[65535]",
    "l7gateServerName(32473/5)<string>[65535]", "l7gateJa3Client(32473/6)<string>[65535]",
    "l7gateJa3Server(32473/7)<string>[65535]", "l7gateTunnel(32473/8)<unsigned16>[2]",
    "l7gateEncap(32473/9)<string>[65535]", "l7gateEnforced(32473/10)<unsigned8>[1]",
]

# nfacctd's primitives file: ntop's elements, the reverse counters (RFC 5103) and l7gate's.
PRIMITIVES = """name=l7_proto_num field_type=35632:118 len=2 semantics=u_int
name=l7_proto_name field_type=35632:119 len=vlen semantics=str
name=l7_category field_type=35632:501 len=vlen semantics=str
name=l7_risk field_type=35632:509 len=4 semantics=u_int
name=l7_risk_name field_type=35632:510 len=vlen semantics=str
name=l7_risk_score field_type=35632:527 len=2 semantics=u_int
name=rev_bytes field_type=29305:1 len=8 semantics=u_int
name=rev_packets field_type=29305:2 len=8 semantics=u_int
name=end_reason field_type=136 len=1 semantics=u_int
name=inner_vlan field_type=245 len=2 semantics=u_int
name=g_verdict field_type=32473:3 len=vlen semantics=str
name=g_reason field_type=32473:4 len=vlen semantics=str
name=g_host field_type=32473:5 len=vlen semantics=str
name=g_ja3c field_type=32473:6 len=vlen semantics=str
name=g_ja3s field_type=32473:7 len=vlen semantics=str
name=g_tunnel field_type=32473:8 len=2 semantics=u_int
name=g_encap field_type=32473:9 len=vlen semantics=str
name=g_enforced field_type=32473:10 len=1 semantics=u_int
"""
END_REASON = {"idle": 1, "reused": 3, "shutdown": 4}
L4 = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58}

WORK = None
GEN_ERROR = ""
S = {}  # the shared run: flows (flow log), dgrams, stats, the down and the plain runs


class Receiver:
    """A UDP collector stand-in: keeps every datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.dgrams = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                self.dgrams.append(self.sock.recv(70000))
            except socket.timeout:
                pass

    def close(self):
        time.sleep(0.3)
        self.stop = True
        self.thread.join()
        self.sock.close()
        return self.dgrams


def flow_ms(ts):
    return int(round(ts * 1e6)) // 1000


def l4(name):
    return L4[name] if name in L4 else int(name)


def vlans(v):
    """(vlanId, dot1qCustomerVlanId) of the flow log's vlan (outer VID << 12 | inner VID)."""
    return (v >> 12, v & 0xFFF) if v >> 12 else (v, 0)


def flow_key(r):
    """A flow-log record's key: the same inner 5-tuple in two tunnels is two flows (README "Tunnels")."""
    return (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], l4(r["l4_proto"]), flow_ms(r["ts_first"]),
            r.get("tunnel", 0))


def record_key(n):
    """The same key of a decoded record (neutral form)."""
    return (n["src"], n["sport"], n["dst"], n["dport"], n["proto"], n["start_ms"], n["tunnel"])


def shared_frames():
    """Frames of the shared classic-pcap captures, within SHARED_BUDGET bytes ([] without them)."""
    if not PCAPS or not os.path.isdir(PCAPS):
        return [], []
    frames, used = [], []
    total = 0
    for n in sorted(os.listdir(PCAPS)):
        p = os.path.join(PCAPS, n)
        if not n.endswith(".pcap") or not os.path.isfile(p) or total + os.path.getsize(p) > SHARED_BUDGET:
            continue
        try:
            recs = harness.read_pcap_records(p, strict=False)
        except AssertionError:
            continue
        frames += [fr for _, fr in recs]
        total += os.path.getsize(p)
        used.append(n)
    return frames, used


def split_by_flow(frames):
    """Two queues' captures: a flow's frames (both directions) on one queue."""
    qs = [[], []]
    for fr in frames:
        k = harness.frame_flow_key(fr)
        q = 0 if k is None else zlib.crc32(repr(sorted(k[1])).encode()) & 1
        qs[q].append(fr)
    return qs


def run(name, extra):
    w = WORK
    t0 = time.monotonic()
    r = harness.run_l7gate(w, name, [[os.path.join(w, "q0.pcap"), os.path.join(w, "q1.pcap")],
                                     [os.path.join(w, "empty.pcap")] * 2],
                           ["--rxq", "2", "--rss", "driver"] + extra, workers=2)
    return r, time.monotonic() - t0


def setUpModule():
    global WORK, GEN_ERROR
    WORK, GEN_ERROR = generate_module_traffic("l7g-ipfix-", "ipfix", "--set", "l7",
                                              modules=("cryptography.hazmat.primitives.ciphers.aead",))
    if GEN_ERROR or not harness.BIN or os.geteuid() != 0:
        return
    frames = harness.read_pcap(os.path.join(WORK, "gen", "l7.pcap"))
    extra, used = shared_frames()
    S["shared"] = used
    for q, fr in enumerate(split_by_flow(frames + extra)):
        harness.write_pcap(os.path.join(WORK, "q%d.pcap" % q), fr)
    rx = Receiver()
    flow_log = os.path.join(WORK, "flows.json")
    S["run"], S["t_ipfix"] = run("ipfix", ["--flow-log", flow_log, "--ipfix", "127.0.0.1:%d" % rx.port,
                                           "--ipfix-mtu", str(MTU), "--ipfix-template-messages",
                                           str(TEMPLATE_MSGS), "--ipfix-domain", str(DOMAIN),
                                           # the timer too: short runs still see refreshes
                                           "--ipfix-template-refresh", "0.1"])
    S["dgrams"] = rx.close()
    with open(os.path.join(WORK, "ipfix.dgrams"), "wb") as f:  # for a look by hand (L7GATE_KEEP_TMP)
        for d in S["dgrams"]:
            f.write(struct.pack("!I", len(d)) + d)
    S["flows"] = [json.loads(ln) for ln in harness.read_text(flow_log).splitlines()]
    # A collector that is down: a UDP port nothing listens on (the kernel answers ICMP port
    # unreachable); and the same traffic without export.
    down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    down.bind(("127.0.0.1", 0))
    down_port = down.getsockname()[1]
    down.close()
    S["down"], S["t_down"] = run("down", ["--ipfix", "127.0.0.1:%d" % down_port])
    S["plain"], S["t_plain"] = run("plain", [])


def tearDownModule():
    harness.remove_work(WORK)


def ipfix_decode(dgrams):
    """[(message header dict, [record dicts], template set present)] by python3-ipfix."""
    import ipfix.ie
    import ipfix.message
    ipfix.ie.use_iana_default()
    ipfix.ie.use_5103_default()
    for spec in NTOP_SPECS:
        ipfix.ie.for_spec(spec)
    mb = ipfix.message.MessageBuffer()
    out = []
    for d in dgrams:
        mb.from_bytes(d)
        hdr = {"odid": mb.odid, "sequence": mb.sequence, "length": mb.length}
        has_tmpl = any(sid == 2 for _, sid, _ in mb.setlist)
        out.append((hdr, list(mb.namedict_iterator()), has_tmpl))
    return out


def expected(f):
    """What an IPFIX record of flow-log record f carries, in neutral form."""
    risks = f["risks"]
    return {
        "src": f["src_ip"], "dst": f["dst_ip"], "sport": f["src_port"], "dport": f["dst_port"],
        "proto": l4(f["l4_proto"]), "vlan": vlans(f["vlan"])[0], "inner_vlan": vlans(f["vlan"])[1],
        "start_ms": flow_ms(f["ts_first"]), "end_ms": flow_ms(f["ts_last"]),
        "bytes": f["c2s_bytes"], "packets": f["c2s_packets"],
        "rev_bytes": f["s2c_bytes"], "rev_packets": f["s2c_packets"],
        "end_reason": END_REASON[f["end"]],
        "l7_proto": int(f["l7_proto_id"].split(".")[-1]) or int(f["l7_proto_id"].split(".")[0]),
        "l7_proto_name": f["l7_proto"], "category": f["category"],
        "risk_names": ",".join(risks), "score": f["risk_score"],
        "verdict": f["verdict"], "reason": f["verdict_reason"], "host": f["host"],
        "ja3c": f["ja3c"], "ja3s": f["ja3s"],
        "tunnel": f.get("tunnel", 0), "encap": f.get("encap", ""), "enforced": 1 if f["enforced"] else 0,
    }


def compare(test, got, flows, what):
    """got: {flow key: neutral record}; every flow-log record must be there, equal."""
    test.assertEqual(len(got), len(flows), "%s: %d records for %d flows" % (what, len(got), len(flows)))
    bad = []
    for f in flows:
        k = flow_key(f)
        g = got.get(k)
        if g is None:
            bad.append("%s: no record for %s" % (what, k))
            continue
        want = expected(f)
        for field, v in want.items():
            if field in g and g[field] != v:
                bad.append("%s %s: %s is %r, the flow log says %r" % (what, k, field, g[field], v))
        missing = [field for field in want if field not in g and field not in g.get("_absent", ())]
        if missing:
            bad.append("%s %s: fields missing %s" % (what, k, missing))
    test.assertFalse(bad, "\n".join(bad[:30]))


def from_python_ipfix(r):
    ms = lambda d: int(round(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000))  # noqa: E731
    src = r.get("sourceIPv4Address", r.get("sourceIPv6Address"))
    dst = r.get("destinationIPv4Address", r.get("destinationIPv6Address"))
    return {
        "src": str(src), "dst": str(dst), "sport": r.get("sourceTransportPort"),
        "dport": r.get("destinationTransportPort"), "proto": r.get("protocolIdentifier"),
        "vlan": r.get("vlanId"), "inner_vlan": r.get("dot1qCustomerVlanId"), "start_ms": ms(r["flowStartMilliseconds"]),
        "end_ms": ms(r["flowEndMilliseconds"]), "bytes": r.get("octetDeltaCount"),
        "packets": r.get("packetDeltaCount"), "rev_bytes": r.get("reverseOctetDeltaCount"),
        "rev_packets": r.get("reversePacketDeltaCount"), "end_reason": r.get("flowEndReason"),
        "l7_proto": r.get("L7_PROTO"), "l7_proto_name": r.get("L7_PROTO_NAME"),
        "category": r.get("L7_PROTO_CATEGORY"), "risk_names": r.get("L7_PROTO_RISK_NAME"),
        "score": r.get("L7_RISK_SCORE"), "verdict": r.get("l7gateVerdict"),
        "reason": r.get("l7gateVerdictReason"), "host": r.get("l7gateServerName"),
        "ja3c": r.get("l7gateJa3Client"), "ja3s": r.get("l7gateJa3Server"),
        "tunnel": r.get("l7gateTunnel"), "encap": r.get("l7gateEncap"), "enforced": r.get("l7gateEnforced"),
        "_risk64": r.get("l7gateRiskBitmap"), "_risk32": r.get("L7_PROTO_RISK"),
    }


def nfacctd_collect(test, dgrams, want):
    """pmacct's nfacctd (print plugin, JSON) fed dgrams: its JSON lines (at least want)."""
    test.need(("nfacctd", "pmacct"))
    d = os.path.join(WORK, "nfacctd-%d" % harness.free_port())
    os.makedirs(d, exist_ok=True)
    port = harness.free_port()
    with open(os.path.join(d, "primitives.lst"), "w") as f:
        f.write(PRIMITIVES)
    out = os.path.join(d, "records.json")
    names = [ln.split()[0][5:] for ln in PRIMITIVES.splitlines()]
    with open(os.path.join(d, "nfacctd.conf"), "w") as f:
        f.write("daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: %d\n"
                "aggregate_primitives: %s\nplugins: print[p]\n"
                "aggregate[p]: src_host, dst_host, src_port, dst_port, proto, vlan, timestamp_start, "
                "timestamp_end, %s\nprint_output[p]: json\nprint_output_file[p]: %s\n"
                "print_output_file_append[p]: true\nprint_refresh_time[p]: 1\n"
                "timestamps_since_epoch: true\nlogfile: %s\n"
                % (port, os.path.join(d, "primitives.lst"), ", ".join(names), out,
                   os.path.join(d, "nfacctd.log")))
    p = subprocess.Popen(["nfacctd", "-f", os.path.join(d, "nfacctd.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = os.path.join(d, "nfacctd.log")  # the core listens, the print plugin is up
        wait_for(lambda: "waiting for NetFlow/IPFIX data" in harness.read_text(log) and
                 "setting object handlers" in harness.read_text(log), 10, "nfacctd to listen")
        replay(dgrams, port)
        return wait_for(lambda: harness.read_text(out).splitlines(), 10,
                        "nfacctd's records", until=lambda ls: len(ls) >= want)
    finally:
        p.send_signal(signal.SIGKILL)  # nfacctd may ignore SIGTERM: by its pid
        p.wait()


def replay(dgrams, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in dgrams:
        s.sendto(d, ("127.0.0.1", port))
        time.sleep(0.0002)  # a collector's socket buffer is not ours to overrun
    s.close()


def from_nfacctd(r):
    def ip_proto(v):
        try:
            return int(v)
        except ValueError:
            return {"ipv6-icmp": 58, "icmp6": 58}.get(v) or socket.getprotobyname(v)
    return {
        "src": str(ipaddress.ip_address(r["ip_src"])), "dst": str(ipaddress.ip_address(r["ip_dst"])),
        "sport": r["port_src"], "dport": r["port_dst"],
        "proto": ip_proto(r["ip_proto"]), "vlan": r["vlan"], "inner_vlan": int(r["inner_vlan"]),
        "start_ms": int(round(float(r["timestamp_start"]) * 1000)),
        "end_ms": int(round(float(r["timestamp_end"]) * 1000)),
        "bytes": r["bytes"], "packets": r["packets"],
        "rev_bytes": int(r["rev_bytes"]), "rev_packets": int(r["rev_packets"]),
        "end_reason": int(r["end_reason"]), "l7_proto": int(r["l7_proto_num"]),
        "l7_proto_name": r["l7_proto_name"], "category": r["l7_category"],
        "risk_names": r["l7_risk_name"], "score": int(r["l7_risk_score"]),
        "verdict": r["g_verdict"], "reason": r["g_reason"], "host": r["g_host"],
        "ja3c": r["g_ja3c"], "ja3s": r["g_ja3s"],
        "tunnel": int(r["g_tunnel"]), "encap": r["g_encap"], "enforced": int(r["g_enforced"]),
    }


class Collectors:
    def need(self, *tools):
        for t, pkg in tools:
            if shutil.which(t) is None:
                self.skipTest("%s not installed (apt-get install %s)" % (t, pkg))

    def need_python_ipfix(self):
        if subprocess.run([harness.PY, "-c", "import ipfix.message"], capture_output=True).returncode != 0:
            self.skipTest("python3-ipfix not installed (apt-get install python3-ipfix)")


class IpfixTest(Collectors, unittest.TestCase):
    def setUp(self):
        require_binary(self)
        check_generated(self, GEN_ERROR)
        self.assertEqual(S["run"].rc, 0, S["run"].describe())
        self.assertTrue(S["flows"], "the flow log is empty")

    def replay(self, port):
        replay(S["dgrams"], port)

    def test_python_ipfix_agrees_with_flow_log(self):
        self.need_python_ipfix()
        msgs = ipfix_decode(S["dgrams"])
        got = {}
        for hdr, recs, _ in msgs:
            for r in recs:
                n = from_python_ipfix(r)
                got[record_key(n)] = n
        compare(self, got, S["flows"], "python3-ipfix")
        # The 64-bit risk bitmap in l7gate's element; its low 32 bits in ntop's L7_PROTO_RISK.
        for n in got.values():
            self.assertEqual(n["_risk32"], n["_risk64"] & 0xFFFFFFFF)
        harness.figure("IPFIX records decoded by python3-ipfix (flows, shared captures)",
                       "%d of %d (%s)" % (len(got), len(S["flows"]), ", ".join(S["shared"]) or "none"))

    def test_messages_domains_sequences_templates(self):
        self.need_python_ipfix()
        msgs = ipfix_decode(S["dgrams"])
        seq, since_tmpl, first = {}, {}, {}
        workers = {f["worker"] for f in S["flows"]}
        domains_seen = set()
        for i, (hdr, recs, has_tmpl) in enumerate(msgs):
            d = hdr["odid"]
            domains_seen.add(d)
            self.assertLessEqual(len(S["dgrams"][i]), MTU, "message %d over --ipfix-mtu" % i)
            self.assertEqual(hdr["sequence"], seq.get(d, 0), "message %d of domain %d: sequence" % (i, d))
            seq[d] = seq.get(d, 0) + len(recs)
            if d not in first:
                first[d] = True
                self.assertTrue(has_tmpl, "domain %d: the first message carries no template" % d)
            since_tmpl[d] = 0 if has_tmpl else since_tmpl.get(d, 0) + 1
            self.assertLessEqual(since_tmpl[d], TEMPLATE_MSGS, "domain %d: no template refresh" % d)
            for r in recs:  # the domain is the worker's
                k = (str(r.get("sourceIPv4Address", r.get("sourceIPv6Address"))), r["sourceTransportPort"])
                ws = {f["worker"] for f in S["flows"] if (f["src_ip"], f["src_port"]) == k}
                self.assertIn(d - DOMAIN, ws, "record %s in domain %d" % (k, d))
        self.assertEqual(domains_seen, {DOMAIN + w for w in workers})
        self.assertEqual(sum(seq.values()), len(S["flows"]))

    def test_late_collector_decodes_after_template_refresh(self):
        self.need_python_ipfix()
        # A collector that starts late sees each domain from its second message on.
        msgs = ipfix_decode(S["dgrams"])
        seen, late = set(), []
        for (hdr, _, _), d in zip(msgs, S["dgrams"]):
            if hdr["odid"] in seen:
                late.append(d)
            seen.add(hdr["odid"])
        # Records it must decode: those from each domain's next template message on.
        want, armed, armed_first = 0, set(), {}
        for i, (hdr, recs, has_tmpl) in enumerate(msgs):
            d = hdr["odid"]
            armed_first.setdefault(d, i)
            if i == armed_first[d]:
                continue
            if has_tmpl:
                armed.add(d)
            if d in armed:
                want += len(recs)
        got = sum(len(recs) for _, recs, _ in ipfix_decode(late))
        self.assertGreater(want, 0, "no template refresh in the stream")
        self.assertEqual(got, want, "a late collector decoded %d records, %d follow a template refresh"
                         % (got, want))

    def test_nfacctd_agrees_with_flow_log(self):
        lines = nfacctd_collect(self, S["dgrams"], len(S["flows"]))
        got = {}
        for ln in lines:
            n = from_nfacctd(json.loads(ln))
            got[record_key(n)] = n
        compare(self, got, S["flows"], "nfacctd")
        S["nfacctd_lines"] = lines

    def test_nfcapd_stores_standard_fields(self):
        self.need(("nfcapd", "nfdump"), ("nfdump", "nfdump"))
        d = os.path.join(WORK, "nfcapd")
        os.makedirs(d, exist_ok=True)
        port = harness.free_port()
        p = subprocess.Popen(["nfcapd", "-p", str(port), "-b", "127.0.0.1", "-w", d],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(0.3)  # nfcapd says nothing when it listens
            self.replay(port)
            time.sleep(0.2)
        finally:
            p.send_signal(signal.SIGTERM)  # nfcapd writes its file out on SIGTERM
            log = p.communicate(timeout=10)[0]
        q = subprocess.run(["nfdump", "-R", d, "-o", "json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(q.returncode, 0, q.stderr + log)
        got = []
        for r in json.loads(q.stdout or "[]"):
            src = r.get("src4_addr", r.get("src6_addr"))
            dst = r.get("dst4_addr", r.get("dst6_addr"))
            ms = lambda t: int(round(datetime.datetime.fromisoformat(t).timestamp() * 1000))  # noqa: E731
            n = {"src": str(ipaddress.ip_address(src)), "dst": str(ipaddress.ip_address(dst)),
                 "sport": r.get("src_port", 0), "dport": r.get("dst_port", 0), "proto": r["proto"],
                 "start_ms": ms(r["first"]), "end_ms": ms(r["last"]),
                 "bytes": r["in_bytes"], "packets": r["in_packets"],
                 "rev_bytes": r.get("out_bytes", 0), "rev_packets": r.get("out_packets", 0),
                 "vlan": r.get("src_vlan", 0)}
            n["_absent"] = [k for k in expected(S["flows"][0]) if k not in n]
            got.append(n)
        # nfdump keeps no enterprise elements, so not the tunnel either: the same inner flow in
        # two tunnels is two records with one 5-tuple. The standard fields, compared as multisets.
        std = ("src", "sport", "dst", "dport", "proto", "start_ms", "end_ms", "bytes", "packets",
               "rev_bytes", "rev_packets", "vlan")
        have = collections.Counter(tuple(n[k] for k in std) for n in got)
        want = collections.Counter(tuple(expected(f)[k] for k in std) for f in S["flows"])
        self.assertEqual(len(got), len(S["flows"]), "nfcapd: %d records for %d flows" % (len(got), len(S["flows"])))
        self.assertEqual(have, want, "nfcapd: records differ from the flow log (missing: %s; unexpected: %s)"
                         % (list((want - have).items())[:5], list((have - want).items())[:5]))

    def test_down_collector_counts_errors_and_keeps_forwarding(self):
        down, plain = S["down"], S["plain"]
        self.assertEqual(down.rc, 0, down.describe())
        self.assertEqual(plain.rc, 0, plain.describe())
        sink = down.stats["flow_log"]["sinks"]["ipfix"]
        self.assertGreater(sink["lost"]["write_error"], 0, "no send error counted: %s" % sink)
        self.assertEqual(sink["written"] + sink["lost"]["write_error"] + sink["lost"]["sink_full"] +
                         sink["lost"]["shutdown"] + sink["queued"], down.stats["flow_log"]["records"])
        tx = lambda r: sum(p["tx_packets"] for p in r.stats["ports"])  # noqa: E731
        self.assertEqual(tx(down), tx(plain))
        self.assertGreater(tx(plain), 0)
        harness.figure("l7gate run with the IPFIX collector down / without --ipfix",
                       "%.2f s / %.2f s, %d packets forwarded each, %d records lost to send errors"
                       % (S["t_down"], S["t_plain"], tx(plain), sink["lost"]["write_error"]))
        self.assertLess(S["t_down"], S["t_plain"] * 2 + 2, "the down collector slowed l7gate")


def udp4(src, sport, dst, dport, size):
    """Ethernet/IPv4/UDP frame of `size` bytes (a zero payload)."""
    udp = struct.pack("!HHHH", sport, dport, size - 34, 0) + bytes(size - 42)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    csum = sum(struct.unpack("!10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp


ACTIVE_S = 1        # --ipfix-active-timeout of the second run
LONG = ("198.18.7.1", 40000, "198.19.7.1", 7000)  # the long flow: 5.5 s of capture time


class ActiveTimeoutTest(Collectors, unittest.TestCase):
    """--ipfix-active-timeout: one short run with --clock capture on a generated capture whose
    one long UDP flow (a packet every ms both ways, 5.5 s) spans more than 5 timeouts, with
    short flows (3 packets within 20 ms) at its start, middle and end."""

    @classmethod
    def setUpClass(cls):
        cls.run_ = None
        if not harness.BIN or os.geteuid() != 0 or WORK is None:
            return
        t0 = 1700000000 * 1000000
        recs = []
        for i in range(5500):  # more than a burst per 32 ms: housekeeping every ~0.5 s of capture time
            c, cp, s, sp = LONG
            fwd = i % 4 != 3
            fr = udp4(c, cp, s, sp, 60 + i % 200) if fwd else udp4(s, sp, c, cp, 100 + i % 50)
            recs.append((t0 + i * 1000, fr))
        for k, at in enumerate((100000, 2600000, 5400000)):
            for j in range(3):
                recs.append((t0 + at + j * 10000, udp4("198.18.8.%d" % (k + 1), 41000 + k, "198.19.7.1", 53, 80)))
        pcap = os.path.join(WORK, "active.pcap")
        harness.write_pcap_records(pcap, recs)
        empty = os.path.join(WORK, "active-empty.pcap")
        harness.write_pcap_records(empty, [])
        rx = Receiver()
        cls.flow_log = os.path.join(WORK, "active-flows.json")
        cls.run_ = harness.run_l7gate(WORK, "active", [[pcap], [empty]],
                                      ["--clock", "capture", "--flows", "256", "--flow-log", cls.flow_log,
                                       "--ipfix", "127.0.0.1:%d" % rx.port,
                                       "--ipfix-active-timeout", str(ACTIVE_S)])
        cls.dgrams = rx.close()

    def setUp(self):
        require_binary(self)
        if self.run_ is None:
            self.skipTest("no l7gate run (needs root and the module's traffic)")
        self.assertEqual(self.run_.rc, 0, self.run_.describe())
        self.flows = [json.loads(ln) for ln in harness.read_text(self.flow_log).splitlines()]

    def check(self, recs, what):
        """recs: neutral records (from_python_ipfix / from_nfacctd keys) of the run."""
        self.assertEqual(len(self.flows), 4, "flow log: %s" % self.flows)
        self.assertNotIn("active", [f["end"] for f in self.flows], "the flow log has interim records")
        for f in self.flows:
            k = (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], l4(f["l4_proto"]))
            mine = sorted((r for r in recs if (r["src"], r["sport"], r["dst"], r["dport"], r["proto"]) == k),
                          key=lambda r: r["end_ms"])
            self.assertTrue(mine, "%s: no record of %s" % (what, k))
            for r in mine:
                self.assertEqual(r["start_ms"], flow_ms(f["ts_first"]), "%s %s: flowStart" % (what, k))
            if (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]) == LONG:
                interim = mine[:-1]
                # 5.5 s at a 1 s timeout, reported from housekeeping about every 0.5 s of capture time
                self.assertGreaterEqual(len(interim), 3, "%s: %d records of the long flow" % (what, len(mine)))
                self.assertEqual([r["end_reason"] for r in interim], [2] * len(interim), "%s: interim" % what)
                self.assertEqual(mine[-1]["end_reason"], END_REASON[f["end"]], "%s: final record" % what)
                self.assertEqual(mine[-1]["end_ms"], flow_ms(f["ts_last"]))
                for a, b in zip(interim, interim[1:]):
                    self.assertGreaterEqual(b["end_ms"] - a["end_ms"], 1000 * ACTIVE_S - 1, "%s: too soon" % what)
                self.assertGreater(interim[0]["bytes"], 0)
                self.assertGreater(mine[-1]["packets"] + mine[-1]["rev_packets"], 0)
            else:
                self.assertEqual(len(mine), 1, "%s: a short flow has %d records" % (what, len(mine)))
            # Deltas: their sums are the flow log's totals, exactly.
            for field, total in (("bytes", "c2s_bytes"), ("packets", "c2s_packets"),
                                 ("rev_bytes", "s2c_bytes"), ("rev_packets", "s2c_packets")):
                self.assertEqual(sum(r[field] or 0 for r in mine), f[total], "%s %s: sum of %s" % (what, k, field))
        return sum(1 for r in recs if r["end_reason"] == 2)

    def test_python_ipfix_interim_records_add_up(self):
        self.need_python_ipfix()
        recs = [from_python_ipfix(r) for _, rs, _ in ipfix_decode(self.dgrams) for r in rs]
        n = self.check(recs, "python3-ipfix")
        sink = self.run_.stats["flow_log"]["sinks"]
        # Interim records reach the IPFIX sink only; the flow log counts them skipped.
        self.assertEqual(sink["flow_log"]["skipped"], n)
        self.assertEqual(sink["ipfix"]["skipped"], 0)
        self.assertEqual(sink["flow_log"]["written"] + n, self.run_.stats["flow_log"]["records"])
        self.assertEqual(sink["ipfix"]["written"], self.run_.stats["flow_log"]["records"])
        harness.figure("IPFIX active timeout 1 s: records of the 5.5 s flow (interim + final)",
                       "%d + 1" % n)

    def test_nfacctd_interim_records_add_up(self):
        # Every record the sink sent (nfacctd prints them all at once, each apart: the end
        # timestamps differ).
        lines = nfacctd_collect(self, self.dgrams, self.run_.stats["flow_log"]["sinks"]["ipfix"]["written"])
        self.check([from_nfacctd(json.loads(ln)) for ln in lines], "nfacctd")


if __name__ == "__main__":
    harness.main()
