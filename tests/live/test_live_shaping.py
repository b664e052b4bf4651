#!/usr/bin/python3
"""Live test 3: shaping and policing real TCP to 20 Mbit/s.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_shaping.py -v

Policy: shaper s20 {rate: 20mbit, burst: 128kb}; the server's second address 198.19.128.80
is marked `shape:s20` (test_shape) or `police:s20` (test_police) by an `ips` marker, which
decides at a flow's first packet. An iperf3 TCP upload of 10 s to that address must settle
(shape:) within +-10% of 20 Mbit/s: the mean of the receiver's 1 s intervals from the 3rd
second on, and the whole-run receiver rate, both in [18, 22] Mbit/s; through police: it must
stay below 22 Mbit/s with the policer's drops counted (TCP against a policer without a queue
falls well below the rate: reported). A parallel iperf3 to the server's
first address (unshaped, paced at 100 Mbit/s) must not be slowed: >= 90 Mbit/s. The figures,
with TCP retransmits, are printed as MEASURED lines.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, iperf_result  # noqa: E402

RATE = 20e6
POLICY = """version: 1
default_policy: lan
shapers:
  s20: {rate: 20mbit, burst: 128kb}
pools:
  - {name: lan, ip: [198.18.0.0/24], policy: lan}
policies:
  lan: {default: pass, ips: {"198.19.128.80/32": "%s:s20"}}
"""
SECONDS = 10
UNSHAPED = 100e6


class ShapingTest(LiveCase):
    TAG = "s"

    def run_marker(self, marker):
        lab = self.lab
        gate = lab.gate(POLICY % marker, qpairs=2, name="gate-" + marker)
        shaped_log = lab.path("iperf-%s.json" % marker)
        free_log = lab.path("iperf-%s-unshaped.json" % marker)
        shaped = lab.popen("cli", ["iperf3", "-c", lab["SRV4JP"], "-p", "5201", "-t", str(SECONDS),
                                   "-J", "-i", "1"], shaped_log)
        free = lab.popen("cli", ["iperf3", "-c", lab["SRV4"], "-p", "5202", "-t", str(SECONDS),
                                 "-b", "%dM" % (UNSHAPED / 1e6), "-J", "-i", "1"], free_log)
        rc_shaped = shaped.wait(timeout=SECONDS + 30)
        rc_free = free.wait(timeout=SECONDS + 30)
        time.sleep(0.2)
        st = gate.stop()
        recs, _ = gate.records()
        self.assertEqual(rc_shaped, 0, "iperf3 through %s failed (%s)" % (marker, shaped_log))
        self.assertEqual(rc_free, 0, "unshaped iperf3 failed (%s)" % free_log)
        s, f = iperf_result(shaped_log), iperf_result(free_log)
        # The receiver's view: what actually crossed l7gate, per 1 s interval.
        whole = s["end"]["sum_received"]["bits_per_second"]
        iv = [i["sum"]["bits_per_second"] for i in s["intervals"]]
        settled = iv[2:]
        mean = sum(settled) / len(settled)
        retr = s["end"]["sum_sent"].get("retransmits", -1)
        free_bps = f["end"]["sum_received"]["bits_per_second"]
        report("%s:s20 (20 Mbit/s): whole run %.2f Mbit/s (%+.1f%%), settled mean (s 3-%d) "
               "%.2f Mbit/s (%+.1f%%), intervals %s, %d retransmits; parallel unshaped flow "
               "%.1f Mbit/s (%d retransmits); l7gate drops %s"
               % (marker, whole / 1e6, (whole / RATE - 1) * 100, SECONDS, mean / 1e6,
                  (mean / RATE - 1) * 100, [round(x / 1e6, 1) for x in iv], retr,
                  free_bps / 1e6, f["end"]["sum_sent"].get("retransmits", -1),
                  {k: v for k, v in st["drops"].items() if v}))
        self.assertAccounted(st)
        marked = [r for r in recs if r["dst_ip"] == lab["SRV4JP"] and r["dst_port"] == 5201]
        self.assertTrue(marked)
        for r in marked:
            self.assertTrue(r["verdict"].startswith(marker), r)
        self.assertGreaterEqual(free_bps, 0.9 * UNSHAPED, "the unshaped flow was slowed")
        if marker == "shape":
            self.assertLess(abs(mean / RATE - 1), 0.10, "settled rate off by more than 10%")
            self.assertLess(abs(whole / RATE - 1), 0.10, "whole-run rate off by more than 10%")
        else:
            # A policer never lets TCP above the rate; below it, TCP pays for every drop (with
            # an RTT far below a millisecond even two segments per RTT exceed 20 Mbit/s, so
            # drops and retransmission timeouts are how it slows down): reported, not bounded
            # from below. That collapse is what shape: (delaying) avoids.
            self.assertLess(whole, RATE * 1.10, "police let more than the rate through")
            self.assertLess(mean, RATE * 1.10, "police let more than the rate through")
            self.assertGreater(whole, 0)
            self.assertGreater(st["drops"]["police"], 0, "out-of-profile packets are counted")

    def test_shape(self):
        self.run_marker("shape")

    def test_police(self):
        self.run_marker("police")


if __name__ == "__main__":
    main()
