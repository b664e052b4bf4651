#!/usr/bin/python3
"""Integration tests: tunnelled traffic and the uninspected-traffic counters (issue 20).

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_tunnels.py -v

Generated traffic (scapy builds the inner packets; the tunnel headers are built here byte by
byte): in each encapsulation l7gate looks into, two TLS connections, one naming a host in the
policy's block list and one naming another. One l7gate run for all of them: the blocked
connection's ClientHello and what follows are dropped (the whole outer frame), the other
passes byte for byte; the flow log names the encapsulation of every inner flow; the counters
count each encapsulation. A second run sends one packet of each uninspected cause and checks
l7gate_uninspected by cause against the forwarded totals.
"""

import json
import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, write_pcap, run_l7gate, require_binary  # noqa: E402

try:
    from scapy.all import Ether, IP, IPv6, TCP, UDP, ARP, raw  # noqa: E402
except ImportError:  # reported by setUp
    Ether = None

POLICY = """
version: 1
default_policy: lan
policies:
  lan:
    default: pass
    hostnames: {"blocked.example": drop}
"""

BLOCKED, ALLOWED = "blocked.example", "allowed.example"
OUT_A, OUT_B = "203.0.113.1", "203.0.113.2"          # tunnel endpoints (v4)
OUT6_A, OUT6_B = "2001:db8:ff::1", "2001:db8:ff::2"  # tunnel endpoints (v6)


def client_hello(host):
    """A TLS 1.2 ClientHello record naming `host`."""
    name = host.encode()
    sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    exts = sni + struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d" + struct.pack("!HHH", 13, 4, 2) + b"\x04\x03"
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 4) + b"\xc0\x2f\x00\x9c"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def conversation(cip, sip, host, v6=False, cport=40000):
    """Inner IP packets of one TLS connection: (direction, bytes, after_hello) with direction 0
    client to server."""
    L3 = IPv6 if v6 else IP
    seq = [1000, 5000]

    def seg(side, flags, payload=b""):
        src, dst, sp, dp = (cip, sip, cport, 443) if side == 0 else (sip, cip, 443, cport)
        p = L3(src=src, dst=dst) / TCP(sport=sp, dport=dp, seq=seq[side], ack=seq[1 - side], flags=flags) / payload
        seq[side] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return raw(p)

    pk = [(0, seg(0, "S"), False), (1, seg(1, "SA"), False), (0, seg(0, "A"), False)]
    pk.append((0, seg(0, "PA", client_hello(host)), True))
    pk.append((1, seg(1, "A"), True))
    pk.append((0, seg(0, "PA", b"\x17\x03\x03\x00\x05hello"), True))
    return pk


def eth(payload, ethertype):
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", ethertype) + payload


def outer4(inner, proto, d):
    a, b = (OUT_A, OUT_B) if d == 0 else (OUT_B, OUT_A)
    return eth(raw(IP(src=a, dst=b, proto=proto) / inner), 0x0800)


def outer6(inner, nh, d):
    a, b = (OUT6_A, OUT6_B) if d == 0 else (OUT6_B, OUT6_A)
    return eth(raw(IPv6(src=a, dst=b, nh=nh) / inner), 0x86DD)


def udp4(payload, sport, dport, d):
    a, b = (OUT_A, OUT_B) if d == 0 else (OUT_B, OUT_A)
    sp, dp = (sport, dport) if d == 0 else (dport, sport)
    return eth(raw(IP(src=a, dst=b) / UDP(sport=sp, dport=dp) / payload), 0x0800)


def gre(inner, ethertype, key=None, csum=False, seq=False):
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq else 0)
    h = struct.pack("!HH", flags, ethertype)
    if csum:
        h += b"\x00" * 4
    if key is not None:
        h += struct.pack("!I", key)
    if seq:
        h += struct.pack("!I", 1)
    return h + inner


def inner_eth(inner):
    et = 0x86DD if inner[0] >> 4 == 6 else 0x0800
    return bytes.fromhex("020000000012020000000011") + struct.pack("!H", et) + inner


def vxlan(inner, vni):
    return struct.pack("!BBHI", 0x08, 0, 0, vni << 8) + inner_eth(inner)


def gtpu(inner, teid, ext=False):
    if not ext:
        return struct.pack("!BBHI", 0x30, 0xFF, len(inner), teid) + inner
    exts = b"\x01\x00\x01\x00"  # one 4-byte PDU session container, then no next header
    return (struct.pack("!BBHI", 0x34, 0xFF, 4 + len(exts) + len(inner), teid) + struct.pack("!HBB", 7, 0, 0x85)
            + exts + inner)


def capwap(inner):
    et = 0x86DD if inner[0] >> 4 == 6 else 0x0800
    return (bytes([0x00, 0x10, 0x42, 0x20, 0, 0, 0, 0]) + bytes(24) + bytes([0xAA, 0xAA, 3, 0, 0, 0])
            + struct.pack("!H", et) + inner)


def pppoe(inner):
    ppp = 0x0057 if inner[0] >> 4 == 6 else 0x0021
    return eth(struct.pack("!BBHHH", 0x11, 0, 0x2a, len(inner) + 2, ppp) + inner, 0x8864)


def mpls(inner, d):
    labels = [16, 1000 + d]  # the bottom (VPN) label differs by direction
    b = b"".join(struct.pack("!I", lab << 12 | (0x100 if i == len(labels) - 1 else 0) | 64)
                 for i, lab in enumerate(labels))
    return eth(b + inner, 0x8847)


# name -> (flow-log encap, inner IPv6?, wrap(inner, direction) -> frame)
ENCAPS = {
    "ipv4_in_ipv4": ("ip_in_ip", False, lambda p, d: outer4(p, 4, d)),
    "ipv6_in_ipv4": ("ip_in_ip", True, lambda p, d: outer4(p, 41, d)),
    "ipv6_in_ipv6": ("ip_in_ip", True, lambda p, d: outer6(p, 41, d)),
    "ipv4_in_ipv6": ("ip_in_ip", False, lambda p, d: outer6(p, 4, d)),
    "gre": ("gre", False, lambda p, d: outer4(gre(p, 0x0800), 47, d)),
    "gre_key_csum_seq": ("gre", True, lambda p, d: outer4(gre(p, 0x86DD, key=77, csum=True, seq=True), 47, d)),
    "gre_ethernet": ("gre", False, lambda p, d: outer4(gre(inner_eth(p), 0x6558, key=5), 47, d)),
    # The client behind the tunnel end with the higher address: the outer addresses are logged
    # as the first packet had them, not in the key's order.
    "gre_from_b": ("gre", False, lambda p, d: outer4(gre(p, 0x0800), 47, 1 - d)),
    "vxlan": ("vxlan", False, lambda p, d: udp4(vxlan(p, 4242), 49152 + d, 4789, 0)),
    "gtp_u": ("gtp_u", False, lambda p, d: udp4(gtpu(p, 0x100 + d), 2152, 2152, d)),
    "gtp_u_ext_ipv6": ("gtp_u", True, lambda p, d: udp4(gtpu(p, 0x200 + d, ext=True), 2152, 2152, d)),
    "capwap": ("capwap", False, lambda p, d: udp4(capwap(p), 12380, 5247, d)),
    "pppoe": ("pppoe", False, lambda p, d: pppoe(p)),
    "pppoe_ipv6": ("pppoe", True, lambda p, d: pppoe(p)),
    "mpls": ("mpls", False, lambda p, d: mpls(p, d)),
}

# name -> the flow log's (outer_src, outer_dst): the carrier's addresses in the flow's first
# packet (the client's SYN); None: no IP carrier, no such fields.
OUTER = {name: ((OUT6_A, OUT6_B) if name.endswith("_in_ipv6") else None if name.startswith(("pppoe", "mpls"))
                else (OUT_B, OUT_A) if name == "gre_from_b" else (OUT_A, OUT_B)) for name in ENCAPS}


def build(encaps):
    """Frames of every case, and per case the (blocked, allowed) frame lists split into what
    must pass and what must be dropped."""
    frames, expect = [], {}
    for i, (name, (_, v6, wrap)) in enumerate(sorted(encaps.items())):
        srv = "2001:db8:100::443" if v6 else "198.19.0.1"
        must_pass, must_drop = [], []
        for j, host in enumerate((BLOCKED, ALLOWED)):
            cli = "2001:db8:%x::%d" % (i + 1, j + 1) if v6 else "198.18.%d.%d" % (i + 1, j + 1)
            for d, p, after in conversation(cli, srv, host, v6):
                f = wrap(p, d)
                frames.append(f)
                (must_drop if host == BLOCKED and after else must_pass).append(f)
        expect[name] = (must_pass, must_drop)
    return frames, expect


class TunnelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.run_ = None
        if Ether is None or not harness.BIN or not os.path.exists(harness.BIN):
            return
        cls.work = tempfile.mkdtemp(prefix="l7gate-tunnels-")
        cls.frames, cls.expect = build(ENCAPS)
        # The same inner 5-tuple in two VXLAN segments: two flows.
        same = conversation("198.18.99.1", "198.19.0.1", ALLOWED)
        for vni in (7, 8):
            cls.frames += [udp4(vxlan(p, vni), 49152, 4789, 0) for _, p, _ in same]
        rx = os.path.join(cls.work, "rx.pcap")
        write_pcap(rx, cls.frames)
        cls.empty = os.path.join(cls.work, "empty.pcap")
        write_pcap(cls.empty, [])
        cls.policy = os.path.join(cls.work, "policy.yaml")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        cls.flow_log = os.path.join(cls.work, "flows.jsonl")
        cls.run_ = run_l7gate(cls.work, "tunnels", [[rx], [cls.empty]],
                              ["--policy", cls.policy, "--flow-log", cls.flow_log])

    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        require_binary(self)
        self.assertEqual(self.run_.rc, 0, self.run_.describe())

    def flows(self):
        with open(self.flow_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_inner_flows_are_judged_in_every_encapsulation(self):
        out = read_pcap(self.run_.outs[1][0])
        outset = set(out)
        for name, (must_pass, must_drop) in sorted(self.expect.items()):
            with self.subTest(encap=name):
                missing = [f for f in must_pass if f not in outset]
                leaked = [f for f in must_drop if f in outset]
                self.assertEqual(len(missing), 0, "%s: %d frames that must pass were dropped" % (name, len(missing)))
                self.assertEqual(len(leaked), 0, "%s: %d frames of the blocked flow passed" % (name, len(leaked)))
        harness.figure("tunnels: encapsulations judged", "%d of %d" % (len(self.expect), len(ENCAPS)))

    def test_flow_log_names_the_encapsulation(self):
        flows = self.flows()
        for name, (encap, v6, _) in sorted(ENCAPS.items()):
            i = sorted(ENCAPS).index(name)
            with self.subTest(encap=name):
                for j, host in enumerate((BLOCKED, ALLOWED)):
                    cli = "2001:db8:%x::%d" % (i + 1, j + 1) if v6 else "198.18.%d.%d" % (i + 1, j + 1)
                    mine = [f for f in flows if cli in (f["src_ip"], f["dst_ip"])]
                    self.assertEqual(len(mine), 1, "%s %s: %s" % (name, host, mine))
                    self.assertEqual(mine[0].get("encap"), encap, mine[0])
                    if OUTER[name] is None:
                        self.assertNotIn("outer_src", mine[0])
                        self.assertNotIn("outer_dst", mine[0])
                    else:
                        self.assertEqual((mine[0].get("outer_src"), mine[0].get("outer_dst")), OUTER[name], mine[0])
                    self.assertEqual(mine[0]["host"], host, mine[0])
                    self.assertEqual(mine[0]["verdict"], "drop" if host == BLOCKED else "pass", mine[0])
                    self.assertEqual(mine[0]["c2s_packets"] + mine[0]["s2c_packets"], 6, mine[0])

    def test_same_inner_flow_in_two_tunnels_is_two_flows(self):
        mine = [f for f in self.flows() if "198.18.99.1" in (f["src_ip"], f["dst_ip"])]
        self.assertEqual(len(mine), 2, mine)
        self.assertNotEqual(mine[0]["tunnel"], mine[1]["tunnel"])
        self.assertEqual(sorted(f["c2s_packets"] + f["s2c_packets"] for f in mine), [6, 6])

    def test_counted_per_encapsulation(self):
        t = self.run_.stats["tunnels"]
        per = {}
        for name, (encap, _, _) in ENCAPS.items():
            per[encap] = per.get(encap, 0) + 12
        per["vxlan"] += 12
        for encap, n in per.items():
            self.assertEqual(t[encap]["packets"], n, (encap, t))
        self.assertEqual(self.run_.stats["uninspected"]["encapsulation"]["packets"], 0, self.run_.stats["uninspected"])


# One packet of each uninspected cause l7gate can be made to produce in one run.
def uninspected_frames():
    arp = raw(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="198.18.0.1", pdst="198.18.0.2"))
    # Encapsulation not looked into: GRE version 1 (PPTP).
    pptp = outer4(struct.pack("!HHHH", 0x3001, 0x880B, 0, 1) + bytes(20), 47, 0)
    # Malformed (--malformed pass): IPv4 total length beyond the frame.
    bad = bytearray(raw(Ether() / IP(src="198.18.0.9", dst="198.19.0.9") / UDP(sport=1, dport=2) / b"x"))
    bad[16:18] = struct.pack("!H", 900)
    # No flow entry: more UDP flows than the table holds (--flows 16).
    flood = [raw(Ether() / IP(src="198.18.50.%d" % i, dst="198.19.0.50") / UDP(sport=1000 + i, dport=53) / b"q")
             for i in range(200)]
    return arp, pptp, bytes(bad), flood


class UninspectedTest(unittest.TestCase):
    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-uninspected-")

    def tearDown(self):
        harness.remove_work(self.work, quiet=True)

    def test_every_cause_counted_once_and_the_sum_matches_what_was_forwarded(self):
        arp, pptp, bad, flood = uninspected_frames()
        rx = os.path.join(self.work, "rx.pcap")
        write_pcap(rx, [arp, pptp, bad] + flood)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        r = run_l7gate(self.work, "unin", [[rx], [empty]], ["--malformed", "pass", "--flows", "16", "--dpi-flows", "16"])
        self.assertEqual(r.rc, 0, r.describe())
        u = r.stats["uninspected"]
        pk = {k: v["packets"] for k, v in u.items()}
        self.assertEqual(pk["non_ip"], 1, u)
        self.assertEqual(pk["encapsulation"], 1, u)
        self.assertEqual(pk["malformed"], 1, u)
        self.assertEqual(pk["fail_open"], 0, u)
        self.assertEqual(pk["monitor"], 0, u)
        flowless = r.stats["flows"]["table_full"] + r.stats["flows"]["bucket_full"]
        self.assertGreater(flowless, 0, r.stats["flows"])
        self.assertEqual(pk["no_flow"], flowless, (u, r.stats["flows"]))
        self.assertEqual(u["non_ip"]["bytes"], len(arp))
        self.assertEqual(u["encapsulation"]["bytes"], len(pptp))
        self.assertEqual(u["malformed"]["bytes"], len(bad))
        # Every packet was forwarded (nothing is dropped here): those with a flow entry and
        # an nDPI state were inspected, the rest are counted, each under one cause.
        out = read_pcap(r.outs[1][0])
        self.assertEqual(len(out), 3 + len(flood))
        inspected = r.stats["flows"]["created"]  # one UDP packet per flow
        no_state = pk["no_dpi_state"]
        self.assertEqual(sum(pk.values()), len(out) - inspected + no_state + 1, u)  # +1: the PPTP flow's packet is counted and has a flow
        harness.figure("uninspected by cause (one of each, 200-flow flood into a 16-flow table)",
                       ", ".join("%s %d" % kv for kv in sorted(pk.items())))


SHAPED_POLICY = """
version: 1
default_policy: lan
shapers:
  s: {rate: 4mbit, burst: 16kb, queue: 64, max_delay: 50ms}
policies:
  lan: {default: "shape:s"}
"""


class ShapedUninspectedTest(unittest.TestCase):
    """A flow whose packets are uninspected (a tunnel not looked into: PPTP's GRE version 1)
    through a shaper, at 5x its rate: what the shaper sends at once, what it queues and sends
    later, and what it drops (a full queue, max_delay, still queued at the stop)."""

    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-shaped-uninspected-")

    def tearDown(self):
        harness.remove_work(self.work, quiet=True)

    def test_counted_once_when_the_shaper_sends_it_never_when_it_drops_it(self):
        t0 = 1700000000 * 1000000
        gap_us = 1000 * 8 * 1e6 / (4000000 * 5)  # 1,000-byte frames at 5x 4 Mbit/s
        frame = outer4(struct.pack("!HHHH", 0x3001, 0x880B, 0, 1).ljust(1000 - 34, b"\0"), 47, 0)
        recs = [(t0 + int(i * gap_us), frame) for i in range(1000)]
        rx = os.path.join(self.work, "rx.pcap")
        harness.write_pcap_records(rx, recs)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        policy = os.path.join(self.work, "policy.yaml")
        with open(policy, "w") as f:
            f.write(SHAPED_POLICY)
        r = run_l7gate(self.work, "shunin", [[rx], [empty]], ["--policy", policy, "--clock", "capture"])
        self.assertEqual(r.rc, 0, r.describe())
        out = read_pcap(r.outs[1][0])
        sh = r.stats["shapers"]["by_shaper"]["s"]
        u = r.stats["uninspected"]
        self.assertGreater(sh["delayed"], 0, sh)  # some left from the queue ...
        drops = r.stats["drops"]
        # ... and some were queued, then dropped (max_delay, or still queued at the stop).
        self.assertGreater(drops["shaper_delay"] + drops["shaper_flush"], 0, drops)
        self.assertEqual(sh["sent"] + sh["delayed"], len(out), sh)
        self.assertEqual(u["encapsulation"]["packets"], len(out), (u, sh))
        self.assertEqual(u["encapsulation"]["bytes"], len(out) * len(frame), (u, sh))
        self.assertEqual(sum(v["packets"] for k, v in u.items() if k != "encapsulation"), 0, u)
        harness.figure("uninspected flow shaped at 5x its rate",
                       "%d frames: %d sent at once, %d from the queue, %d dropped; uninspected %d"
                       % (len(recs), sh["sent"], sh["delayed"], len(recs) - len(out), u["encapsulation"]["packets"]))


    def test_flowless_packets_the_shaper_queues_count_as_no_flow_when_sent(self):
        # A 16-entry flow table filled by unshaped flows, then 300 one-packet flows of a
        # shaped pool at 5x the rate: none gets an entry (flowless, verdict shape:s).
        t0 = 1700000000 * 1000000
        gap_us = 1000 * 8 * 1e6 / (4000000 * 5)
        fill = [(t0 + i, harness.udp_frame(256 + i, 5000, i, 100)) for i in range(100)]      # 198.18.2.x: pass
        flood = [(t0 + 1000 + int(i * gap_us), harness.udp_frame(1 + i % 250, 6000 + i, i, 1000))
                 for i in range(300)]                                                          # 198.18.1.x: shaped
        rx = os.path.join(self.work, "rx.pcap")
        harness.write_pcap_records(rx, fill + flood)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        policy = os.path.join(self.work, "policy.yaml")
        with open(policy, "w") as f:
            f.write(SHAPED_POLICY.replace("default_policy: lan", "default_policy: other")
                    + "  other: {default: pass}\npools:\n  - {name: lan, ip: [198.18.1.0/24], policy: lan}\n")
        r = run_l7gate(self.work, "shflowless", [[rx], [empty]],
                       ["--policy", policy, "--clock", "capture", "--flows", "16", "--dpi-flows", "16"])
        self.assertEqual(r.rc, 0, r.describe())
        out = read_pcap(r.outs[1][0])
        fl = r.stats["flows"]
        sh = r.stats["shapers"]["by_shaper"]["s"]
        u = r.stats["uninspected"]
        self.assertEqual(fl["flowless"]["shape"], len(flood), fl)  # every shaped packet was flowless
        self.assertGreater(sh["delayed"], 0, sh)
        self.assertEqual(sh["sent"] + sh["delayed"], len(out) - len(fill), sh)
        # Every packet that left without an entry, unshaped or from the shaper: the unshaped
        # fill flows beyond the table's entries, and every shaped packet that left.
        self.assertEqual(u["no_flow"]["packets"], len(out) - fl["created"], (u, fl, sh))


if __name__ == "__main__":
    harness.main()
