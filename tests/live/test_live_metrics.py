#!/usr/bin/python3
"""Live test 6: a real Prometheus scrapes l7gate while live traffic of tests 1-3 crosses it.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_metrics.py -v

Debian's Prometheus runs in the lab's gateway namespace and scrapes l7gate's --metrics
endpoint (127.0.0.1:9777 there) every second. Traffic: pass-through (10 MB HTTP download, DNS,
TLS to allowed.test, SSH), blocking (blocked.test dropped, rejected.test reset, SSH to the JP
address dropped by country) and a 4 s iperf3 through a `shape:` marker. After a quiet
period l7gate stops; then Prometheus's stored series (last_over_time) must equal l7gate's exit
counters from --stats-json: rx/tx packets and bytes per port and queue, drops by every
reason, flows created, RSTs injected; and Prometheus must have scraped all along (a sample
per second, the counters moving while the traffic ran).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, wait_for, GEOIP, PROMETHEUS  # noqa: E402

POLICY = """version: 1
default_policy: lan
shapers:
  s20: {rate: 20mbit, burst: 128kb}
pools:
  - {name: lan, ip: [198.18.0.0/24, "2001:db8:100::10/128"], policy: lan}
policies:
  lan:
    default: pass
    hostnames: {blocked.test: drop, rejected.test: reject}
    countries: {JP: drop}
    protocols: {TargusDataspeed: "shape:s20"}
"""


class MetricsTest(LiveCase):
    TAG = "m"

    def test_prometheus_agrees_with_exit_counters(self):
        lab = self.lab
        gate = lab.gate(POLICY, qpairs=2, metrics="127.0.0.1:9777", extra=["--geoip", GEOIP])
        prom = lab.prometheus("127.0.0.1:9777")
        t0 = time.time()
        srv4, jp4 = lab["SRV4"], lab["SRV4JP"]

        # Test 1's traffic.
        rc, _, err = lab.curl("http://www.lab.test/10M.bin", resolve="www.lab.test:80:" + srv4,
                              timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(lab.dig("allowed.test").stdout.strip(), srv4)
        self.assertEqual(lab.https("allowed.test")[0], 0)
        self.assertEqual(lab.ssh().returncode, 0)
        # Test 2's.
        self.assertEqual(lab.https("blocked.test", timeout=2)[0], 28)
        self.assertIn(lab.https("rejected.test")[0], (35, 56))
        self.assertNotEqual(lab.ssh(addr=jp4, timeout=2).returncode, 0)
        # Test 3's (the shaper, or its absence, does not matter here: the counters must agree).
        log = lab.path("iperf.json")
        self.assertEqual(lab.iperf(seconds=4, log=log).wait(timeout=40), 0)

        # Quiet: wait until l7gate's endpoint has shown the same counters for longer than its
        # 1 s refresh and Prometheus has stored a scrape of them.
        seen = {"counters": None, "since": time.monotonic()}

        def counters():
            body = lab.ns("gw", ["curl", "-sf", "-m", "2", "http://127.0.0.1:9777/metrics"],
                          check=True).stdout
            mine = tuple(sum(float(ln.rsplit(None, 1)[1]) for ln in body.splitlines()
                             if ln.startswith(m + "{"))
                         for m in ("l7gate_rx_packets_total", "l7gate_tx_packets_total"))
            if mine != seen["counters"]:
                seen["counters"], seen["since"] = mine, time.monotonic()
            stored = tuple(sum(v for _, v in lab.prom_query(prom, "sum(%s)" % m))
                           for m in ("l7gate_rx_packets_total", "l7gate_tx_packets_total"))
            return {"endpoint rx, tx": mine, "prometheus rx, tx": stored,
                    "unchanged for s": round(time.monotonic() - seen["since"], 2)}

        wait_for(counters, 30, "l7gate's counters to settle (unchanged > 1.5 s on /metrics) and "
                 "Prometheus to store them",
                 until=lambda c: c["unchanged for s"] > 1.5 and c["endpoint rx, tx"] == c["prometheus rx, tx"],
                 interval=0.25, proc=gate.proc)
        st = gate.stop()
        self.assertAccounted(st)

        def vec(expr, *labels):
            return {tuple(m.get(k) for k in labels): v for m, v in lab.prom_query(prom, expr)}

        rng = "[%ds]" % (int(time.time() - t0) + 30)
        scrapes = vec("count_over_time(up{job=\"l7gate\"}%s)" % rng)
        n = int(list(scrapes.values())[0]) if scrapes else 0
        self.assertGreaterEqual(n, int(time.time() - t0) - 5, "a scrape every second")
        checked = 0
        # The lab is quiet for the last scrapes, but the kernels of the namespaces may still
        # send a stray frame (IPv6 neighbour or router solicitation, a late RST) between the
        # last scrape and the stop: Prometheus may then lag the exit counters by those few
        # frames, never lead them.
        slack = {"rx_packets": 4, "tx_packets": 4, "rx_bytes": 4 * 1514, "tx_bytes": 4 * 1514}
        lagged = []
        for metric, field in (("rx_packets", "rx_packets"), ("tx_packets", "tx_packets"),
                              ("rx_bytes", "rx_bytes"), ("tx_bytes", "tx_bytes")):
            got = vec("last_over_time(l7gate_%s_total%s)" % (metric, rng), "port", "queue")
            for p in st["ports"]:
                for q in p["queues"]:
                    key = (str(p["port"]), str(q["queue"]))
                    what = "%s port %s queue %s" % (metric, *key)
                    self.assertIsNotNone(got.get(key), what)
                    self.assertLessEqual(got[key], q[field], what)
                    self.assertGreaterEqual(got[key], q[field] - slack[field], what)
                    if got[key] != q[field]:
                        lagged.append((what, q[field] - got[key]))
                    checked += 1
        if lagged:
            report("Prometheus lagged the exit counters by stray frames after its last scrape: %s" % lagged)
        drops = vec("last_over_time(l7gate_drops_total%s)" % rng, "reason")
        for reason, value in st["drops"].items():
            self.assertEqual(drops.get((reason,)), value, "drops{reason=%s}" % reason)
            checked += 1
        created = vec("last_over_time(l7gate_flows_created_total%s)" % rng)
        self.assertEqual(list(created.values()), [st["flows"]["created"]])
        # Scraped during the traffic, not only at the end: the counters moved between scrapes.
        moves = vec("sum(changes(l7gate_rx_packets_total%s))" % rng)
        n_moves = int(list(moves.values())[0]) if moves else 0
        self.assertGreaterEqual(n_moves, 4, "rx counters changed between scrapes")
        verdicts = vec("last_over_time(l7gate_verdicts_total%s)" % rng, "action", "reason")
        self.assertGreater(verdicts.get(("drop", "lan/hostnames/blocked.test"), 0), 0, verdicts)
        self.assertGreater(verdicts.get(("reject", "lan/hostnames/rejected.test"), 0), 0, verdicts)
        t = st["totals"]
        report("Prometheus: %d scrapes; %d stored series agree with the exit counters (rx %d, tx %d, "
               "policy drops %d, flows %d); rx counters moved %d times across scrapes"
               % (n, checked + 1, t["rx_packets"], t["tx_packets"], st["drops"]["policy"],
                  st["flows"]["created"], n_moves))


if __name__ == "__main__":
    main(extra=[PROMETHEUS])
