#!/usr/bin/python3
"""Integration test: a new TCP connection on the 5-tuple of one that ended is a new flow.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_reuse.py -v

Connection 1 asks HTTP for a hostname the policy rejects: l7gate resets both ends.
Connection 2 reuses the same addresses and ports (as a client does at once after a reset)
and asks for an allowed hostname: it must be classified and judged afresh and pass, not
inherit connection 1's cached reject. The flow log holds both, the first ended "reused".
The same after a drop and a client reset. But the same SYN again (its initial sequence number
unchanged: a retransmission, or a replayed capture) stays with its flow.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, run_l7gate, require_binary, write_pcap_records  # noqa: E402

try:
    from scapy.all import Ether, IP, TCP, raw  # noqa: E402
except ImportError:
    Ether = None

POLICY = """version: 1
default_policy: lan
policies:
  lan: {default: pass, hostnames: {blocked.test: drop}}
"""
CLI, SRV = "198.18.1.10", "198.19.0.80"
SPORT = 40000


def connection(host, isn, t0, rst):
    """A TCP connection with an HTTP request for `host`; closed by a client RST or FINs."""
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    er = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    c, s = isn, 5000
    req = ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n" % host).encode()
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    pk = [
        e / IP(src=CLI, dst=SRV) / TCP(sport=SPORT, dport=80, flags="S", seq=c),
        er / IP(src=SRV, dst=CLI) / TCP(sport=80, dport=SPORT, flags="SA", seq=s, ack=c + 1),
        e / IP(src=CLI, dst=SRV) / TCP(sport=SPORT, dport=80, flags="A", seq=c + 1, ack=s + 1),
        e / IP(src=CLI, dst=SRV) / TCP(sport=SPORT, dport=80, flags="PA", seq=c + 1, ack=s + 1) / req,
        er / IP(src=SRV, dst=CLI) / TCP(sport=80, dport=SPORT, flags="PA", seq=s + 1, ack=c + 1 + len(req)) / resp,
    ]
    if rst:
        pk.append(e / IP(src=CLI, dst=SRV) / TCP(sport=SPORT, dport=80, flags="R", seq=c + 1 + len(req)))
    else:
        pk += [e / IP(src=CLI, dst=SRV) / TCP(sport=SPORT, dport=80, flags="FA", seq=c + 1 + len(req),
                                               ack=s + 1 + len(resp)),
               er / IP(src=SRV, dst=CLI) / TCP(sport=80, dport=SPORT, flags="FA", seq=s + 1 + len(resp),
                                                ack=c + 2 + len(req))]
    return [(t0 + 1000 * i, raw(p)) for i, p in enumerate(pk)]


class ReuseTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        self.work = tempfile.mkdtemp(prefix="l7g-reuse-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def test_a_new_connection_after_a_reject_is_judged_afresh(self):
        # l7gate's own RSTs end connection 1 (the client sends none).
        self.check(POLICY.replace("blocked.test: drop", "blocked.test: reject"), rst=False, verdict="reject",
                   reused=1)

    def test_a_new_connection_after_a_client_reset_is_judged_afresh(self):
        # Connection 1 is dropped and the client resets it; connection 2 on the same ports
        # (another initial sequence number) must not inherit the drop, nor could it
        # inherit a pass: a closed flow's verdict never covers a new connection.
        self.check(POLICY, rst=True, verdict="drop", reused=1)

    def test_the_same_syn_again_stays_with_its_flow(self):
        # A replayed capture (or a retransmission) repeats the SYN with its sequence number:
        # the same connection, the same flow, its drop kept.
        self.check(POLICY, rst=True, verdict="drop", reused=0, isn2=1000)

    def check(self, policy, rst, verdict, reused, isn2=900000):
        t0 = 1700000000 * 1000000
        first = connection("blocked.test", 1000, t0, rst=rst)
        second = connection("allowed.test", isn2, t0 + 200000, rst=False)  # 0.2 s later
        inp = os.path.join(self.work, "in.pcap")
        write_pcap_records(inp, first + second)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap_records(empty, [])
        pol = os.path.join(self.work, "policy.yaml")
        with open(pol, "w") as f:
            f.write(policy)
        flows = os.path.join(self.work, "flows.jsonl")
        r = run_l7gate(self.work, "reuse", [[inp], [empty]],
                       ["--policy", pol, "--clock", "capture", "--flow-log", flows])
        self.assertEqual(r.rc, 0, r.describe())
        # Both directions were replayed into port 0: everything that passed left port 1.
        out = read_pcap(r.outs[1][0])
        self.assertFalse(any(b"Host: blocked.test" in f for f in out), "connection 1's request passed")
        with open(flows) as f:
            recs = [json.loads(x) for x in f if "event" not in x]
        st = r.stats
        self.assertEqual(st["flows"]["reused"], reused)
        self.assertEqual(st["flows"]["created"], 1 + reused)
        self.assertEqual(len(recs), 1 + reused, recs)
        if reused:
            # Connection 2 went through whole: its request and the server's answer.
            self.assertTrue(any(b"Host: allowed.test" in f for f in out), "connection 2's request was dropped")
            self.assertTrue(any(b"HTTP/1.1 200 OK" in f for f in out), "connection 2's answer was dropped")
            one, two = sorted(recs, key=lambda x: x["ts_first"])
            self.assertEqual((one["verdict"], one["host"], one["end"]), (verdict, "blocked.test", "reused"), one)
            self.assertEqual((two["verdict"], two["host"]), ("pass", "allowed.test"), two)
        else:
            self.assertFalse(any(b"Host: allowed.test" in f for f in out), "the old flow's drop was lost")
            self.assertEqual((recs[0]["verdict"], recs[0]["host"]), (verdict, "blocked.test"), recs[0])
        t = st["totals"]
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])


if __name__ == "__main__":
    harness.main()
