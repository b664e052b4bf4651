#!/usr/bin/python3
"""Integration test: --no-extra-dissection ends classification when nDPI names the protocol.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_extra_dissection.py -v

The generated l7 traffic (tools/gen_traffic.py --set l7: TLS 1.2 and 1.3, HTTP, DNS, QUIC,
SSH, ...) is classified twice. With --no-extra-dissection every flow must get the same
protocol as by default, from fewer nDPI calls, and the metadata that only comes after the
protocol is named must be missing: the TLS server's JA3 (ServerHello). What the option gives
up is documented in --help and README.
"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import generated_work, remove_work, run_l7gate, write_pcap  # noqa: E402


class ExtraDissectionTest(unittest.TestCase):
    def setUp(self):
        self.work = generated_work(self, "l7g-extra-")
        self.addCleanup(remove_work, self.work)

    def classify(self, name, extra):
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        flows = os.path.join(self.work, name + "-flows.jsonl")
        r = run_l7gate(self.work, name, [[os.path.join(self.work, "l7.pcap")], [empty]],
                       ["--clock", "capture", "--flow-log", flows] + extra)
        self.assertEqual(r.rc, 0, r.describe())
        with open(flows) as f:
            recs = [json.loads(x) for x in f if "event" not in x]
        key = lambda x: (x["l4_proto"], x["src_ip"], x["src_port"], x["dst_ip"], x["dst_port"], x["vlan"])
        return r.stats, {key(x): x for x in recs}

    def test_same_protocols_fewer_ndpi_calls(self):
        full_st, full = self.classify("full", [])
        fast_st, fast = self.classify("fast", ["--no-extra-dissection"])
        self.assertEqual(set(fast), set(full))
        for k, f in full.items():
            self.assertEqual(fast[k]["l7_proto"], f["l7_proto"], k)
            self.assertEqual(fast[k]["host"], f["host"], k)
        calls_full = full_st["classification"]["ndpi_packets"]
        calls_fast = fast_st["classification"]["ndpi_packets"]
        print("nDPI calls: %d by default, %d with --no-extra-dissection" % (calls_full, calls_fast),
              file=sys.stderr)
        self.assertLess(calls_fast, calls_full)
        tls = [k for k, f in full.items() if f["l7_proto"].startswith("TLS") and f.get("ja3s")]
        self.assertGreater(len(tls), 0, "the l7 set has TLS flows with a ServerHello")
        for k in tls:
            self.assertFalse(fast[k].get("ja3s"), "JA3S needs the ServerHello: %r" % (k,))
            self.assertTrue(fast[k].get("ja3c"), "JA3C comes with the ClientHello: %r" % (k,))
        for st in (full_st, fast_st):
            t = st["totals"]
            self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])


if __name__ == "__main__":
    harness.main()
