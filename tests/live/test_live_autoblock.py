#!/usr/bin/python3
"""Live test 5: auto-block of a host that sends SQL-injection requests.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_autoblock.py -v

Policy: pass everything, hosts.auto_block at score 500 over 60 s, block_for 4 s. The client's
second address (198.18.0.66, the attacker) sends HTTP requests with an SQL-injection URL to
nginx, one after the other, until one of them fails: nDPI gives each of those flows the
"SQL Injection" risk, its client score goes to the attacker, and once the sum passes 500
l7gate blocks the host. Expected: the block event in the flow log (host, score >= 500,
until = ts + 4 s) and in l7gate's log; the attacker's next connection fails (auto-block drops:
curl times out) while the other client address still works; after block_for the attacker
connects again (host_released event).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, wait_for  # noqa: E402

THRESHOLD = 500
BLOCK_FOR = 4
POLICY = """version: 1
default_policy: lan
hosts: {auto_block: {score: %d, window: 60s, block_for: %ds}}
policies:
  lan: {default: pass}
""" % (THRESHOLD, BLOCK_FOR)
SQLI = "http://shop.lab.test/products.php?id=1%27%20OR%20%271%27%3D%271"


class AutoBlockTest(LiveCase):
    TAG = "a"

    def test_auto_block(self):
        lab = self.lab
        gate = lab.gate(POLICY, qpairs=2, extra=["--log-level", "info"])
        srv4, attacker = lab["SRV4"], lab["CLI4B"]
        resolve = ["--resolve", "shop.lab.test:80:" + srv4]

        def request(url, src, timeout=2):
            return lab.curl(url, timeout=timeout, extra=["--interface", src] + resolve)

        def events(kind):
            return [e for e in gate.records()[1] if e["event"] == kind]

        sent = 0
        for _ in range(12):
            rc, _, err = request(SQLI, attacker)
            sent += 1
            if rc != 0:
                # A failed request means a block: its event line follows into the flow log.
                wait_for(lambda: events("host_blocked"), 5,
                         "a host_blocked event in the flow log after SQL-injection request %d "
                         "failed (curl %s: %s)" % (sent, rc, err), proc=gate.proc)
            blocked = events("host_blocked")
            if blocked:
                break
            self.assertEqual(rc, 0, "SQL-injection request %d failed, no block: %s" % (sent, err))
        self.assertTrue(blocked, "no block after %d SQL-injection requests" % sent)
        ev = blocked[0]
        self.assertEqual(ev["host"], attacker)
        self.assertGreaterEqual(ev["score"], THRESHOLD)
        self.assertEqual(ev["threshold"], THRESHOLD)
        self.assertAlmostEqual(ev["until"] - ev["ts"], BLOCK_FOR, places=2)
        report("auto-block: %s blocked, event seen after %d SQL-injection requests (score %d >= %d)"
               % (attacker, sent, ev["score"], THRESHOLD))

        # Blocked: the attacker's next connection fails, the other client works.
        rc, secs, err = request("http://shop.lab.test/", attacker)
        self.assertEqual(rc, 28, "the blocked host's connection must fail: %s %s" % (rc, err))
        rc, _, err = request("http://shop.lab.test/", lab["CLI4"])
        self.assertEqual(rc, 0, "another host is not blocked: " + err)

        # Released after block_for: the host_released event, then the attacker connects.
        wait_for(lambda: [e for e in events("host_released") if e["host"] == attacker],
                 max(ev["until"] - time.time(), 0) + 5,
                 "the host_released event of %s (blocked until %.3f)" % (attacker, ev["until"]),
                 proc=gate.proc)
        rc, _, err = request("http://shop.lab.test/", attacker, timeout=5)
        self.assertEqual(rc, 0, "after block_for the host connects again: %s" % err)
        report("auto-block: the blocked host's next connection timed out (curl exit 28, %.1f s) "
               "while another address connected; released after %.1f s, connects again"
               % (secs, time.time() - ev["ts"]))

        st = gate.stop()
        recs, evs = gate.records()
        released = [e for e in evs if e["event"] == "host_released" and e["host"] == attacker]
        self.assertTrue(released, evs)
        self.assertGreaterEqual(released[0]["ts"], ev["until"] - 0.01)
        self.assertIn("blocked %s: score" % attacker, gate.log())
        mine = [r for r in recs if r["src_ip"] == attacker]
        sqli = [r for r in mine if "SQL Injection" in r["risks"]]
        self.assertGreaterEqual(len(sqli), 2, mine)
        dropped = [r for r in mine if r["verdict_reason"] == "hosts/auto_block"]
        self.assertTrue(dropped, "the attacker's flows during the block were dropped: %s" % mine)
        for r in recs:
            if r["src_ip"] != attacker and r["l4_proto"] == "TCP":
                self.assertEqual(r["verdict"], "pass", r)
        self.assertEqual(st["hosts"]["blocks_total"], 1)
        self.assertAccounted(st)


if __name__ == "__main__":
    main()
