#!/usr/bin/python3
"""Integration test: TCP flows that open with a bare SYN take nDPI state only at their payload.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_deferred.py -v

l7gate does not feed nDPI the payload-less packets of a TCP flow that opens with a bare SYN
(DpiState::Pending, src/dataplane/classifier_ndpi.hpp): it records what nDPI would have
learnt from them and primes nDPI's state with that at the first payload, or gives the flow up
from the record when it ends without payload. The results must be nDPI's own: this capture of
half-open flows (SYN only, retransmitted SYNs, SYN + SYN-ACK, a reset, the ports nDPI guesses
from, an address nDPI knows, IPv6) and of complete flows (client-first and server-first
protocols, a retransmitted SYN before the data) is classified by l7gate and by ndpiReader
(run here), and every flow must agree (protocol, category, risks). The stats show how many
flows waited and how many ended without payload; nDPI must not have been called on a SYN.
The capture is only a file: l7gate replays it between two pcap vdevs, nothing is sent.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import PY, TOOLS, run_l7gate, require_binary, write_pcap_records  # noqa: E402

try:
    from scapy.all import Ether, IP, IPv6, TCP, raw  # noqa: E402
except ImportError:
    Ether = None

CLI, SRV = "198.18.1.10", "198.19.0.80"
T0 = 1700000000 * 1000000


class Capture:
    def __init__(self):
        self.recs, self.t = [], T0
        self.sport = 41000
        self.half_open = 0

    def add(self, pkt):
        self.recs.append((self.t, raw(pkt)))
        self.t += 1000

    def conv(self, dport, steps, srv=SRV, cli=CLI, v6=False):
        """steps: ("c"|"s", flags, payload) from the client or the server."""
        self.sport += 1
        sport, cseq, sseq = self.sport, 1000, 5000
        ip = IPv6 if v6 else IP
        for who, flags, data in steps:
            if who == "c":
                p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip(src=cli, dst=srv) / \
                    TCP(sport=sport, dport=dport, flags=flags, seq=cseq, ack=sseq if "A" in flags else 0)
                cseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
            else:
                p = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / ip(src=srv, dst=cli) / \
                    TCP(sport=dport, dport=sport, flags=flags, seq=sseq, ack=cseq)
                sseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
            if "S" in flags and who == "c":
                cseq = 1001  # a retransmitted SYN repeats the sequence number
            self.add(p / data if data else p)
        if not any(d for _, _, d in steps):
            self.half_open += 1


def handshake():
    return [("c", "S", b""), ("s", "SA", b""), ("c", "A", b"")]


def build(path):
    c = Capture()
    # Half-open: never any payload.
    c.conv(80, [("c", "S", b"")])
    c.conv(443, [("c", "S", b"")])
    c.conv(22, [("c", "S", b"")] * 3)                          # retransmitted
    c.conv(25, [("c", "S", b""), ("s", "SA", b"")])            # no final ACK
    c.conv(8080, [("c", "S", b""), ("s", "RA", b"")])          # refused
    c.conv(4662, [("c", "S", b"")])                            # eDonkey's port
    c.conv(3389, handshake() + [("c", "FA", b""), ("s", "FA", b"")])
    c.conv(853, [("c", "S", b"")], srv="8.8.8.8")              # an address nDPI knows (Google)
    c.conv(443, [("c", "S", b"")], srv="2001:db8::80", cli="2001:db8:1::10", v6=True)
    # Complete: the handshake first, then client-first and server-first payloads.
    http = b"GET /index.html HTTP/1.1\r\nHost: deferred.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
    c.conv(80, handshake() + [("c", "PA", http),
                              ("s", "PA", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")])
    c.conv(22, handshake() + [("s", "PA", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
                              ("c", "PA", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")])
    c.conv(25, handshake() + [("s", "PA", b"220 mail.deferred.test ESMTP Postfix\r\n"),
                              ("c", "PA", b"EHLO client.deferred.test\r\n"),
                              ("s", "PA", b"250-mail.deferred.test\r\n250 8BITMIME\r\n")])
    c.conv(80, [("c", "S", b""), ("c", "S", b"")] + handshake()[1:] + [("c", "PA", http)])
    c.conv(8080, handshake() + [("c", "PA", http)], srv="2001:db8::80", cli="2001:db8:1::10", v6=True)
    write_pcap_records(path, c.recs)
    return c


class DeferredTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        if not os.path.exists("/usr/bin/ndpiReader"):
            self.skipTest("ndpiReader (libndpi-bin) is not installed")
        self.work = tempfile.mkdtemp(prefix="l7g-deferred-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def test_results_are_ndpis_own(self):
        pcap = os.path.join(self.work, "deferred.pcap")
        cap = build(pcap)
        p = subprocess.run([PY, os.path.join(TOOLS, "compare_ndpireader.py"), "--l7gate", os.environ["L7GATE_BIN"],
                            "--min-agreement", "100", pcap],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                           timeout=600)
        print(p.stdout, file=sys.stderr)
        self.assertEqual(p.returncode, 0, "l7gate and ndpiReader disagree\n%s\n%s"
                         % (p.stdout[-6000:], p.stderr[-2000:]))
        self.assertIn("(14 of 14 flows", p.stdout)

        empty = os.path.join(self.work, "empty.pcap")
        write_pcap_records(empty, [])
        r = run_l7gate(self.work, "deferred", [[pcap], [empty]], ["--clock", "capture"])
        self.assertEqual(r.rc, 0, r.describe())
        c = r.stats["classification"]
        self.assertEqual(c["deferred"], 14, c)  # every flow opened with a bare SYN
        self.assertEqual(c["deferred_no_payload"], cap.half_open, c)
        # nDPI saw the payload packets and what followed them, never a handshake packet
        # before the first payload.
        payload_and_after = 2 + 2 + 3 + 1 + 1
        self.assertEqual(c["ndpi_packets"], payload_and_after, c)
        t = r.stats["totals"]
        self.assertEqual(t["rx_packets"], len(cap.recs))
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])
        # Per-protocol counters count every packet once, under its flow's final protocol: a
        # deferred handshake is not counted as Unknown and again when the flow is classified.
        protos = r.stats["protocols"]
        self.assertEqual(sum(p["packets"] for p in protos.values()), len(cap.recs), protos)
        self.assertEqual(sum(p["bytes"] for p in protos.values()), sum(len(f) for _, f in cap.recs), protos)
        self.assertEqual(sum(p["flows"] for p in protos.values()), 14, protos)


if __name__ == "__main__":
    harness.main()
