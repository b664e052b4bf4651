#!/usr/bin/python3
"""Two bridge pairs (four net_pcap ports) served by two workers: traffic stays in its pair.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_pairs.py -v

The configuration of a gateway with two links through it (config/l7gate.conf's "two pairs"
example, on virtual devices): `--pairs 0:1,2:3 --rxq 2 --rss driver`, each port reading one
capture per queue (net_pcap's rx_pcap per queue stands in for a NIC's RSS spreading). Every
frame that enters port 0 must leave port 1 and nowhere else, byte for byte and in order per
queue, and likewise 1 -> 0, 2 -> 3, 3 -> 2; the frames of one pair (addresses 198.18.x.x) never
show up on the other pair's ports (198.19.x.x), and both workers carry traffic.
"""

import os
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, write_pcap, run_l7gate, require_binary  # noqa: E402


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src, dst, sport, dport, payload):
    """Ethernet / IPv4 / UDP with valid lengths and IP checksum (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00" + bytes([src[3]]) + b"\x02\x00\x00\x00\x00" + bytes([dst[3]]) + b"\x08\x00"
    return eth + ip + udp


def pair_traffic(net, pair, queue, n):
    """Frames of n UDP flows of one pair on one queue: (side A frames, side B frames). The client
    side (A) sends a request, the server side (B) answers; addresses say which pair they belong
    to (198.<net>.<queue>.x) and the payload names pair, queue and flow."""
    a, b = [], []
    for i in range(n):
        cli = [198, net, queue, 10 + i]
        srv = [198, net, 100 + queue, 1]
        tag = ("pair%d-q%d-flow%d" % (pair, queue, i)).encode()
        for k in range(3):
            a.append(udp_frame(cli, srv, 40000 + i, 53, tag + b" req %d" % k))
            b.append(udp_frame(srv, cli, 53, 40000 + i, tag + b" resp %d" % k))
    return a, b


def pair_of(frame):
    """The second octet of the IPv4 source: 18 for pair 0:1, 19 for pair 2:3."""
    return frame[14 + 12 + 1]


class TwoPairsTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-pairs-")

    def tearDown(self):
        if os.environ.get("L7GATE_KEEP_TMP"):
            print("kept", self.work, file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def test_two_pairs_two_workers(self):
        nets = {0: 18, 1: 19}  # pair index -> address block
        rx = {}  # port -> [frames per queue]
        for pair, (pa, pb) in enumerate([(0, 1), (2, 3)]):
            rx[pa], rx[pb] = [], []
            for q in range(2):
                a, b = pair_traffic(nets[pair], pair, q, 5 + q + 2 * pair)
                rx[pa].append(a)
                rx[pb].append(b)
        files = []
        for port in range(4):
            per_q = []
            for q in range(2):
                path = os.path.join(self.work, "in%d-q%d.pcap" % (port, q))
                write_pcap(path, rx[port][q])
                per_q.append(path)
            files.append(per_q)

        r = run_l7gate(self.work, "pairs", files,
                       ["--pairs", "0:1,2:3", "--rxq", "2", "--rss", "driver", "--flows", "1024"], workers=2)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertIn("4 port(s) in 2 pair(s), 2 worker(s)", r.stdout)

        peer = {0: 1, 1: 0, 2: 3, 3: 2}
        for port in range(4):
            for q in range(2):
                got = read_pcap(r.outs[port][q])
                want = rx[peer[port]][q]
                self.assertEqual(len(got), len(want), "port %d queue %d: frames out" % (port, q))
                self.assertEqual(got, want, "port %d queue %d: exactly the peer's frames, in order" % (port, q))
                own = 18 if port < 2 else 19
                strangers = [f for f in got if pair_of(f) != own]
                self.assertEqual(strangers, [], "port %d carries frames of the other pair" % port)

        st = r.stats
        self.assertIsNotNone(st, r.describe())
        self.assertEqual(st["totals"]["rx_packets"], st["totals"]["tx_packets"])
        self.assertEqual(st["totals"]["dropped"], 0)
        ports = {p["port"]: p for p in st["ports"]}
        for port in range(4):
            self.assertEqual(ports[port]["tx_packets"], ports[peer[port]]["rx_packets"],
                             "port %d transmits what its peer received" % port)
            self.assertEqual(ports[port]["rx_packets"], sum(len(x) for x in rx[port]))
        workers = st["workers"]
        self.assertEqual(len(workers), 2)
        for w in workers:
            want = sum(len(rx[p][w["queue"]]) for p in range(4))
            self.assertEqual(w["rx_packets"], want, "worker of queue %d" % w["queue"])
        # Each flow was seen in both directions by one worker: one flow per (pair, queue, i).
        flows = sum(5 + q + 2 * pair for pair in range(2) for q in range(2))
        self.assertEqual(st["flows"]["created"], flows)


if __name__ == "__main__":
    harness.main()
