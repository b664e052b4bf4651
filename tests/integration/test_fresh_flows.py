#!/usr/bin/python3
"""Integration test: --bench-fresh-flows makes every pass of a replayed capture new flows.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_fresh_flows.py -v

The benchmarks (perf/run.sh, new-flow mixes) replay a capture endlessly (net_pcap
infinite_rx) and need every pass to be new flows. A capture of 1,000 UDP flows, one packet each,
replayed for a second: without the option l7gate sees 1,000 flows however many passes go by;
with it, one new flow per packet received (each pass's 1,000 flows new, none meeting an older
one), until the table is full.
"""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import run_l7gate, require_binary, udp_frame, write_pcap  # noqa: E402

FLOWS = 1000  # passes stay well under the 65,536 values of the rewrite


class FreshFlowsTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7g-fresh-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.pcap = os.path.join(self.work, "ten.pcap")
        write_pcap(self.pcap, [udp_frame(i + 1, 5000 + i, 0, 100) for i in range(FLOWS)])
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])

    def replay(self, name, extra):
        r = run_l7gate(self.work, name, [["%s,infinite_rx=1" % self.pcap], [self.empty]],
                       ["--mbufs", "16384", "--duration", "1", "--flows", "4194304",
                        "--dpi-flows", "4096"] + extra, idle_exit=False, tx_null=True)
        self.assertEqual(r.rc, 0, r.describe())
        t = r.stats["totals"]
        self.assertGreater(t["rx_packets"], 20 * FLOWS, "the replay made too few passes")
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])
        return r.stats

    def test_a_plain_replay_repeats_its_flows(self):
        st = self.replay("plain", [])
        self.assertEqual(st["flows"]["created"], FLOWS)

    def test_every_pass_is_new_flows(self):
        st = self.replay("fresh", ["--bench-fresh-flows", str(FLOWS)])
        # Every packet a new flow: created, or refused by a full table (a fast machine fills
        # the 4M entries within the second, since nothing expires that soon).
        f = st["flows"]
        self.assertEqual(f["created"] + f["table_full"], st["totals"]["rx_packets"], f)
        self.assertGreater(f["created"], 20 * FLOWS, f)


if __name__ == "__main__":
    harness.main()
