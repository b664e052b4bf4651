#!/usr/bin/python3
"""Integration tests: hostile traffic against the real binary.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_robustness.py -v

- A SYN flood (random half-open flows) mixed into the generated l7 traffic, with a small nDPI
  state pool: the half-open flows must not starve the legitimate flows of classification
  (the oldest half-open flows give their state up), every frame is accounted for.
"""

import json
import os
import random
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import read_pcap_records, write_pcap, run_l7gate, require_binary, generate  # noqa: E402

PY = "/usr/bin/python3"
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")


def syn_frame(rng):
    """An Ethernet/IPv4/TCP SYN from a random 198.18.200.0/21 host and port to 198.19.0.0/16."""
    src = bytes([198, 18, 200 + rng.randrange(8), rng.randrange(256)])
    dst = bytes([198, 19, rng.randrange(256), rng.randrange(1, 255)])
    tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), 443, rng.randrange(1 << 32), 0,
                      5 << 4, 0x02, 64240, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.randrange(65536), 0, 64, 6, 0, src, dst)
    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
    return eth + ip + tcp


class SynFloodTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-robust-")
        generate(self, self.work)
        with open(os.path.join(self.work, "l7-expect.json")) as f:
            self.expect = json.load(f)

    def tearDown(self):
        if not os.environ.get("L7GATE_KEEP_TMP"):
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print("kept", self.work)

    def test_syn_flood_does_not_starve_classification(self):
        rng = random.Random(1)
        l7 = [fr for _, fr in read_pcap_records(os.path.join(self.work, "l7.pcap"))]
        # The pool (512 states) is full of half-open flows before l7 starts, and 5 SYNs follow
        # every legitimate frame: a handshake completes within a few hundred SYNs, as a real
        # one completes within an RTT while the flood fills far fewer states than the default
        # pool holds (65536 states at 2 Mpps of SYNs last 33 ms).
        frames = [syn_frame(rng) for _ in range(3000)]
        for fr in l7:
            frames.append(fr)
            frames += [syn_frame(rng) for _ in range(5)]
        mixed = os.path.join(self.work, "mixed.pcap")
        write_pcap(mixed, frames)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        flows = os.path.join(self.work, "flows.jsonl")
        r = run_l7gate(self.work, "flood", [[mixed], [empty]],
                       ["--dpi-flows", "512", "--flows", "16384", "--flow-log", flows])
        self.assertEqual(r.rc, 0, r.describe())
        st = r.stats
        self.assertEqual(st["totals"]["rx_packets"], len(frames))
        self.assertEqual(st["totals"]["tx_packets"], len(frames), "nothing may be dropped")
        cls = st["classification"]
        self.assertEqual(cls["dpi_pool_full"], 0, cls)
        self.assertGreater(cls["dpi_reclaimed"], 3000 - 512, cls)
        with open(flows) as f:
            log = {(x["src_ip"], x["src_port"], x["dst_ip"], x["dst_port"]): x for x in map(json.loads, f)}
        for e in self.expect:
            got = log.get((e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"]))
            self.assertIsNotNone(got, e["name"])
            self.assertEqual(got["l7_proto"], e["l7_proto"], e["name"])
        print("flood: %d frames, %d flows, %d nDPI states reclaimed from half-open flows"
              % (len(frames), st["flows"]["created"], cls["dpi_reclaimed"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
