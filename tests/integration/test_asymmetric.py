#!/usr/bin/python3
"""Integration test: a TCP flow whose two directions reach two workers is counted asymmetric.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_asymmetric.py -v

With `--rss driver` l7gate trusts the port's queue assignment. When that hash is not
symmetric, the client's SYN reaches one worker and the server's SYN-ACK another: the second
worker opens a flow with the SYN-ACK. That is counted in `flows.asymmetric` (stats JSON) and
`l7gate_flows_asymmetric_total`, and the flow's client is still the SYN-ACK's receiver.
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
from harness import run_l7gate, require_binary, write_pcap_records  # noqa: E402
from test_reuse import CLI, SRV, SPORT, connection  # noqa: E402

try:
    from scapy.all import Ether  # noqa: E402
except ImportError:
    Ether = None

T0 = 1700000000 * 1000000


class AsymmetricTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        self.work = tempfile.mkdtemp(prefix="l7g-asym-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def run_split(self, queue_of):
        """Replays one connection over two RX queues of port 0; queue_of(i, frame) picks each
        frame's queue. Returns (stats, flow records)."""
        frames = connection("allowed.test", 1000, T0, rst=False)
        queues = [[], []]
        for i, rec in enumerate(frames):
            queues[queue_of(i, rec[1])].append(rec)
        rx = []
        for q, recs in enumerate(queues):
            path = os.path.join(self.work, "q%d.pcap" % q)
            write_pcap_records(path, recs)
            rx.append(path)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap_records(empty, [])
        flows = os.path.join(self.work, "flows.jsonl")
        r = run_l7gate(self.work, "asym", [rx, [empty, empty]],
                       ["--rxq", "2", "--rss", "driver", "--clock", "capture", "--flow-log", flows], workers=2)
        self.assertEqual(r.rc, 0, r.describe())
        with open(flows) as f:
            recs = [json.loads(x) for x in f if "event" not in x]
        t = r.stats["totals"]
        self.assertEqual(t["rx_packets"], len(frames))
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])
        return r.stats, recs

    def test_directions_on_two_workers_are_counted(self):
        # The client's frames (source MAC ...:01) on queue 0, the server's on queue 1.
        st, recs = self.run_split(lambda i, f: 0 if f[6:12] == b"\x02\x00\x00\x00\x00\x01" else 1)
        self.assertEqual(st["flows"]["asymmetric"], 1)
        self.assertEqual(st["flows"]["created"], 2)
        self.assertEqual(sorted(r["worker"] for r in recs), [0, 1])
        # Both halves name the same client: the SYN's sender, the SYN-ACK's receiver.
        for r in recs:
            self.assertEqual((r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]), (CLI, SPORT, SRV, 80), r)

    def test_one_worker_per_flow_counts_nothing(self):
        st, recs = self.run_split(lambda i, f: 1)
        self.assertEqual(st["flows"]["asymmetric"], 0)
        self.assertEqual(st["flows"]["created"], 1)
        self.assertEqual([r["worker"] for r in recs], [1])
        self.assertEqual(recs[0]["host"], "allowed.test")


if __name__ == "__main__":
    harness.main()
