#!/usr/bin/python3
"""Integration tests: the reject verdict on generated traffic through the real binary.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_reject.py -v

The generated l7 traffic (both directions, in capture order) enters port 0; a policy rejects
SSH and DNS. l7gate forwards what passes to port 1, sends RSTs / ICMP errors back out of
port 0 (to the sender of the rejected packet) and forward out of port 1 (to its receiver).
Checked with scapy: well-formed packets (IP and TCP/ICMP checksums), sequence numbers the
receiving stack accepts (RFC 793/5961: exactly the next sequence number it expects, taken
from the rejected packet), the quoted datagram in the ICMP error, and the rate limit.
"""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, write_pcap, run_l7gate, require_binary, generate  # noqa: E402

PY = "/usr/bin/python3"
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")

try:
    from scapy.all import Ether, IP, IPv6, TCP, UDP, ICMP, raw  # noqa: E402
except ImportError:  # reported by setUp
    Ether = None

POLICY = """
version: 1
default_policy: lan
policies:
  lan: {default: pass, protocols: {SSH: reject, DNS: reject}}
"""


def tuple_of(p):
    ip = p[IP] if IP in p else p[IPv6]
    l4 = p[TCP] if TCP in p else (p[UDP] if UDP in p else None)
    return (ip.src, l4.sport if l4 else 0, ip.dst, l4.dport if l4 else 0)


def checksums_ok(p):
    """Rebuild with checksums cleared: scapy recomputes them; equal bytes = they were right."""
    q = Ether(raw(p))
    for layer in (IP, TCP, UDP, ICMP):
        if layer in q:
            del q[layer].chksum
    if IP in q:
        pass
    return raw(Ether(raw(q))) == raw(p)


class RejectTest(unittest.TestCase):
    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for %s" % PY)
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-reject-")
        generate(self, self.work)
        self.policy = os.path.join(self.work, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(POLICY)
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def run_reject(self, name, rate):
        r = run_l7gate(self.work, name, [[os.path.join(self.work, "l7.pcap")], [self.empty]],
                       ["--clock", "capture", "--policy", self.policy, "--reject-rate", str(rate)])
        self.assertEqual(r.rc, 0, r.describe())
        return r

    def test_rst_and_icmp_are_well_formed_and_in_window(self):
        r = self.run_reject("reject", 1000)
        frames = read_pcap(os.path.join(self.work, "l7.pcap"))
        back = [Ether(f) for f in read_pcap(r.outs[0][0])]     # to senders
        fwd_all = read_pcap(r.outs[1][0])                        # forwarded + to receivers
        forwarded = set(fwd_all)
        # Every rejected packet (input frames missing from the output), by flow.
        dropped = {}
        for f in frames:
            if f in forwarded:
                continue
            p = Ether(f)
            if IP not in p and IPv6 not in p:
                continue
            t = tuple_of(p)
            dropped.setdefault(frozenset([(t[0], t[1]), (t[2], t[3])]), []).append(p)
        self.assertTrue(dropped, "the policy dropped nothing")
        rst_back = [p for p in back if TCP in p and p[TCP].flags & 0x04]
        rst_fwd = [Ether(f) for f in fwd_all if f not in frames]
        icmp_back = [p for p in back if ICMP in p]
        self.assertGreater(len(rst_back), 0)
        self.assertGreater(len(rst_fwd), 0)
        self.assertGreater(len(icmp_back), 0)
        for p in rst_back + rst_fwd + icmp_back:
            self.assertTrue(checksums_ok(p), "bad checksum: " + p.summary())

        def flow_of(p):
            t = tuple_of(p)
            return dropped[frozenset([(t[0], t[1]), (t[2], t[3])])]

        for p in rst_back:
            # Sent to a rejected packet's sender, from its receiver, with the sender's own
            # acknowledgement number as seq (what the sender expects next), or RST|ACK
            # acknowledging a bare SYN.
            t = tuple_of(p)
            ok = [o for o in flow_of(p) if tuple_of(o) == (t[2], t[3], t[0], t[1]) and
                  ((o[TCP].flags & 0x10 and p[TCP].seq == o[TCP].ack) or
                   (not o[TCP].flags & 0x10 and p[TCP].ack == o[TCP].seq + 1))]
            self.assertTrue(ok, "RST back %s matches no rejected packet" % p.summary())
            self.assertEqual(p.src, ok[0].dst)
            self.assertEqual(p.dst, ok[0].src)
        for p in rst_fwd:
            # Sent on to a rejected packet's receiver as if from its sender, with the rejected
            # packet's seq: the receiver never got it, so that is exactly what it expects.
            self.assertIn(TCP, p)
            self.assertTrue(p[TCP].flags & 0x04)
            ok = [o for o in flow_of(p) if tuple_of(o) == tuple_of(p) and o[TCP].seq == p[TCP].seq]
            self.assertTrue(ok, "RST forward %s matches no rejected packet" % p.summary())
        for p in icmp_back:
            self.assertEqual((p[ICMP].type, p[ICMP].code), (3, 3))
            quoted = bytes(p[ICMP].payload)
            origs = [d for ds in dropped.values() for d in ds if UDP in d and raw(d[IP])[:len(quoted)] == quoted]
            self.assertTrue(origs, "the ICMP error quotes a rejected datagram")
            orig = origs[0]
            self.assertEqual((p[IP].src, p[IP].dst), (orig[IP].dst, orig[IP].src))
            self.assertEqual(len(quoted), orig[IP].ihl * 4 + 8)
        st = r.stats
        self.assertEqual(st["injected"]["sent"], len(rst_back) + len(rst_fwd) + len(icmp_back))
        self.assertEqual(st["injected"]["limited"], 0)
        self.assertEqual(st["totals"]["rx_packets"], st["totals"]["tx_packets"] + st["totals"]["dropped"])

    def test_rate_limit_holds(self):
        r = self.run_reject("limited", 1)
        inj = r.stats["injected"]
        # One packet per second with two packets of burst; the capture lasts 20 ms.
        self.assertLessEqual(inj["sent"], 2)
        self.assertGreater(inj["limited"], 0)
        extra = [f for f in read_pcap(r.outs[0][0])]
        self.assertLessEqual(len(extra), 2)

    def test_zero_rate_sends_nothing_but_still_drops(self):
        r = self.run_reject("silent", 0)
        self.assertEqual(r.stats["injected"]["sent"], 0)
        self.assertGreater(r.stats["drops"]["policy"], 0)
        self.assertEqual(read_pcap(r.outs[0][0]), [])


# Every packet here is rejected by the policy; only the two controls may be answered.
SILENT_POLICY = """
version: 1
default_policy: lan
policies:
  lan: {default: reject}
"""

LAN_MAC = "02:00:00:00:00:01"
WAN_MAC = "02:00:00:00:00:02"


class RejectSilenceTest(unittest.TestCase):
    """RFC 793 and RFC 1122: a reject never answers a RST with a RST, nor sends anything for a
    packet to (or from) a broadcast or multicast address; such packets are dropped and counted
    as injected.suppressed."""

    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for %s" % PY)
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-reject-silent-")
        self.policy = os.path.join(self.work, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(SILENT_POLICY)
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_no_answer_to_a_rst_or_to_broadcast_and_multicast(self):
        from scapy.all import Raw
        a4, b4, a6 = "198.18.0.10", "198.19.0.20", "2001:db8::10"
        silent = [
            # RSTs hitting the reject rule: no RST back, none forward.
            Ether(src=LAN_MAC, dst=WAN_MAC) / IP(src=a4, dst=b4) / TCP(sport=40001, dport=443, flags="R", seq=1000),
            Ether(src=LAN_MAC, dst=WAN_MAC) / IP(src=a4, dst=b4) / TCP(sport=40002, dport=443, flags="RA",
                                                                      seq=2000, ack=3000),
            Ether(src=LAN_MAC, dst=WAN_MAC) / IPv6(src=a6, dst="2001:db8::20") / TCP(sport=40003, dport=443,
                                                                                      flags="R", seq=1),
            # UDP to broadcast and multicast: no ICMP / ICMPv6 error.
            Ether(src=LAN_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=a4, dst="255.255.255.255") /
            UDP(sport=68, dport=67) / Raw(b"x" * 20),
            Ether(src=LAN_MAC, dst="01:00:5e:00:00:fb") / IP(src=a4, dst="224.0.0.251") /
            UDP(sport=5353, dport=5353) / Raw(b"y" * 20),
            Ether(src=LAN_MAC, dst="33:33:00:00:00:fb") / IPv6(src=a6, dst="ff02::fb") /
            UDP(sport=5353, dport=5353) / Raw(b"z" * 20),
            # Multicast IP behind a unicast MAC, and a unicast IP behind the broadcast MAC.
            Ether(src=LAN_MAC, dst=WAN_MAC) / IP(src=a4, dst="239.1.2.3") / UDP(sport=4000, dport=4001) /
            Raw(b"m" * 20),
            Ether(src=LAN_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=a4, dst=b4) / UDP(sport=4002, dport=4003) /
            Raw(b"b" * 20),
        ]
        controls = [
            # The rule does answer ordinary packets: a SYN gets RST|ACK, unicast UDP an ICMP error.
            Ether(src=LAN_MAC, dst=WAN_MAC) / IP(src=a4, dst=b4) / TCP(sport=40009, dport=443, flags="S", seq=5000),
            Ether(src=LAN_MAC, dst=WAN_MAC) / IP(src=a4, dst=b4) / UDP(sport=4010, dport=4011) / Raw(b"u" * 20),
        ]
        frames = [raw(p) for p in silent + controls]
        inp = os.path.join(self.work, "silent.pcap")
        write_pcap(inp, frames)
        r = run_l7gate(self.work, "silent", [[inp], [self.empty]],
                       ["--clock", "capture", "--policy", self.policy])
        self.assertEqual(r.rc, 0, r.describe())
        back = [Ether(f) for f in read_pcap(r.outs[0][0])]
        fwd = [Ether(f) for f in read_pcap(r.outs[1][0])]
        self.assertEqual(fwd, [], "nothing passes or is sent on: " + ", ".join(p.summary() for p in fwd))
        # Exactly the controls' answers went back.
        self.assertEqual(len(back), 2, "answers: " + ", ".join(p.summary() for p in back))
        rst = [p for p in back if TCP in p]
        icmp = [p for p in back if ICMP in p]
        self.assertEqual(len(rst), 1)
        self.assertEqual((rst[0][TCP].dport, rst[0][TCP].flags), (40009, 0x14))
        self.assertEqual(len(icmp), 1)
        self.assertEqual(icmp[0][IP].dst, a4)
        self.assertEqual(bytes(icmp[0][ICMP].payload)[20:22], (4010).to_bytes(2, "big"))
        st = r.stats
        self.assertEqual(st["drops"]["policy"], len(frames), "every packet is still dropped")
        self.assertEqual(st["injected"]["sent"], 2)
        self.assertEqual(st["injected"]["suppressed"], len(silent))
        self.assertEqual(st["injected"]["limited"], 0)
        self.assertEqual(st["totals"]["rx_packets"], len(frames))
        self.assertEqual(st["totals"]["tx_packets"], 0)


if __name__ == "__main__":
    harness.main()
