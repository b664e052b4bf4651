#!/usr/bin/python3
"""Live test 4: policy hot reload under live traffic.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_reload.py -v

While a 20 s iperf3 TCP transfer runs and a loop of curl requests hits nginx over HTTPS
(allowed.test, a-only.test, b-only.test), the policy file is replaced and l7gate signalled
(SIGHUP) 50 times, cycling through policy A (rejects a-only.test), policy B (rejects
b-only.test) and an invalid file. Expected:
- the iperf3 transfer completes and its flow passes;
- every request to allowed.test succeeds; a request that fails was reset by l7gate, and its
  flow's verdict is a reject that policy A or B gives it (matched by the client port curl
  reports); every request that succeeded has a pass verdict;
- every valid file was loaded and every invalid one refused (counted);
- l7gate's counters account for every packet: rx = tx + dropped, dropped = the sum of the
  drop reasons, and the PMD sent what l7gate forwarded plus the RSTs it injected.

L7GATE_LIVE_BREAK=1 swaps the invalid file for a valid policy that drops everything: the test
must then fail (a reload that applies a wrong policy is detected).
"""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, write_atomic, iperf_result, asymmetric_flows, wait_for  # noqa: E402

BASE = """version: 1
default_policy: other
pools:
  - {{name: lan, ip: [198.18.0.0/24], policy: {name}}}
policies:
  {name}: {{default: pass, hostnames: {{{host}: reject}}}}
  other: {{default: pass}}
"""
POLICY_A = BASE.format(name="a", host="a-only.test")
POLICY_B = BASE.format(name="b", host="b-only.test")
INVALID = POLICY_A.replace("reject", "rejectt")
if os.environ.get("L7GATE_LIVE_BREAK"):
    INVALID = POLICY_A.replace("default: pass, hostnames", "default: drop, hostnames")
RELOADS = 50
SECONDS = 20
HOSTS = ("allowed.test", "a-only.test", "b-only.test")


def sighup_reloads(log):
    """SIGHUP-requested loads in l7gate's log, the refused ones included."""
    return sum("loaded " in ln and " (SIGHUP): generation" in ln or "reload (SIGHUP) failed" in ln
               for ln in log.splitlines())


class ReloadTest(LiveCase):
    TAG = "r"

    def test_reload_under_traffic(self):
        lab = self.lab
        gate = lab.gate(POLICY_A, qpairs=2)
        srv4 = lab["SRV4"]
        log = lab.path("iperf.json")
        # 300 Mbit/s: enough packets to matter, and CPU left for the curl loop on a small box.
        iperf = lab.iperf(port=5201, seconds=SECONDS, bitrate="300M", log=log)

        results = []   # (host, curl exit code, local port, stderr, start, end)
        stop = threading.Event()

        def curl_loop():
            i = 0
            while not stop.is_set():
                host = HOSTS[i % len(HOSTS)]
                i += 1
                t0 = time.time()
                p = lab.cli(["curl", "-sS", "-k", "-m", "5", "-o", "/dev/null",
                             "-w", "%{local_port}", "--resolve", "%s:443:%s" % (host, srv4),
                             "https://%s/" % host], timeout=15)
                results.append((host, p.returncode, p.stdout.strip(), p.stderr.strip(), t0, time.time()))

        t = threading.Thread(target=curl_loop)
        t.start()
        sent = {"a": 0, "b": 0, "invalid": 0}
        try:
            # Reloads start under traffic: once a first request has crossed l7gate.
            wait_for(lambda: results, 15, "the curl loop's first request through l7gate",
                     proc=gate.proc)
            interval = (SECONDS - 3.0) / RELOADS
            for i in range(RELOADS):
                kind = ("a", "b", "invalid")[i % 3]
                write_atomic(gate.policy, {"a": POLICY_A, "b": POLICY_B, "invalid": INVALID}[kind])
                t0 = time.monotonic()
                gate.signal(signal.SIGHUP)
                sent[kind] += 1
                # One reload per SIGHUP: signals that arrive before the control thread took the
                # previous one are one request (a reload reads the file as it is then), so the
                # next file is written only once this one's load is logged.
                wait_for(lambda: sighup_reloads(gate.log()), 10,
                         "the reload of SIGHUP %d" % (i + 1), until=lambda n, k=i: n >= k + 1,
                         proc=gate.proc)
                time.sleep(max(0.0, interval - (time.monotonic() - t0)))
            # End on a valid policy: wait until l7gate has loaded it (every SIGHUP's load is
            # logged "reloaded ... (SIGHUP)" or "reload (SIGHUP) failed").
            write_atomic(gate.policy, POLICY_B)
            gate.signal(signal.SIGHUP)
            wait_for(lambda: sighup_reloads(gate.log()), 10,
                     "the final SIGHUP's reload (%d SIGHUP reload lines in l7gate's log)"
                     % (RELOADS + 1), until=lambda n: n >= RELOADS + 1, proc=gate.proc)
            rc = iperf.wait(timeout=SECONDS + 30)
        finally:
            stop.set()
            t.join(timeout=30)
        st = gate.stop()
        recs, _ = gate.records()

        # The transfer completed.
        self.assertEqual(rc, 0, "iperf3 failed (%s)" % log)
        res = iperf_result(log)["end"]
        self.assertGreater(res["sum_received"]["bytes"], 0)
        report("iperf3 TCP %d s under reloads: %.0f Mbit/s received, %d retransmits"
               % (SECONDS, res["sum_received"]["bits_per_second"] / 1e6,
                  res["sum_sent"].get("retransmits", -1)))
        it = [r for r in recs if r["dst_port"] == 5201 and r["l4_proto"] == "TCP"]
        self.assertTrue(it)
        self.assertTrue(all(r["verdict"] == "pass" for r in it), it)

        # Reloads.
        pol = st["policy"]
        valid_sent = sent["a"] + sent["b"] + 1
        report("reloads: %d signalled (%d A, %d B, %d invalid, +1 final B); l7gate counted "
               "%d ok, %d failed, generation %d"
               % (RELOADS, sent["a"], sent["b"], sent["invalid"], pol["reloads_ok"],
                  pol["reloads_failed"], pol["generation"]))
        self.assertGreaterEqual(pol["reloads_ok"], valid_sent)
        self.assertGreaterEqual(pol["reloads_failed"], sent["invalid"])
        self.assertTrue(pol["last_reload_success"])

        # Requests: failures only by the policy in force.
        by_port = {}
        for r in recs:
            if r["l4_proto"] == "TCP" and r["dst_port"] == 443:
                by_port.setdefault(str(r["src_port"]), []).append(r)
        self.assertGreater(len(results), 50, "the curl loop ran")
        failed = late = 0
        passing = {("pass", r) for r in ("a/default", "b/default", "other/default")}
        for host, code, port, err, t0, t1 in results:
            # The client reuses local ports: one request is one connection, the flow on its
            # port that started nearest its start (l7gate's timestamps are the wall clock,
            # give or take the TSC's drift; requests on one port are tens of ms apart).
            cands = [f for f in by_port.get(port, []) if abs(f["ts_first"] - t0) < 1.0]
            flows = sorted(cands, key=lambda f: abs(f["ts_first"] - t0))[:1]
            self.assertTrue(flows, "no flow logged for %s (port %s, curl %s %s)" % (host, port, code, err))
            verdicts = {(f["verdict"], f["verdict_reason"]) for f in flows}
            rule = {"a-only.test": ("reject", "a/hostnames/a-only.test"),
                    "b-only.test": ("reject", "b/hostnames/b-only.test")}.get(host)
            if host == "allowed.test":
                self.assertEqual(code, 0, "allowed.test failed: %s %s (verdict %s)" % (code, err, verdicts))
            if code == 0:
                if verdicts == {rule}:
                    # Served while the other policy was in force; the reload that followed
                    # re-evaluated the flow on a late packet (its FIN): a flow is judged again
                    # on its next packet after a reload, and the log keeps the last verdict.
                    late += 1
                else:
                    self.assertLessEqual(verdicts, passing, (host, verdicts))
            else:
                failed += 1
                self.assertIn("reset", err.lower(), (host, code, err))
                self.assertEqual(verdicts, {rule}, (host, code, err))
        report("curl loop: %d requests, %d reset by the policy in force, 0 failed otherwise "
               "(%d served, then re-judged by a reload on a late packet)"
               % (len(results), failed, late))
        self.assertGreater(failed, 0, "the reject rules took effect")
        self.assertLess(failed, len(results))

        # Fanout: both directions of every flow met on one worker, under load too.
        tcp = [r for r in recs if r["l4_proto"] == "TCP"]
        per_worker = {}
        for r in tcp:
            per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
        asym = asymmetric_flows(tcp)
        report("fanout under load: TCP flows per worker %s; asymmetric flows: %d; "
               "l7gate's flows.asymmetric: %d" % (dict(sorted(per_worker.items())), len(asym),
                                                  st["flows"]["asymmetric"]))
        self.assertEqual(asym, {})
        self.assertEqual(st["flows"]["asymmetric"], 0)

        # Every packet accounted for.
        rx, tx, dropped = self.assertAccounted(st)
        pmd_rx = sum(p["pmd_rx_packets"] for p in st["ports"])
        pmd_tx = sum(p["pmd_tx_packets"] for p in st["ports"])
        missed = sum(p["imissed"] for p in st["ports"])
        injected = st["injected"]["sent"]
        self.assertEqual(pmd_rx, rx, "l7gate saw what the PMD received")
        self.assertEqual(pmd_tx, tx + injected, "the PMD sent what l7gate forwarded plus its RSTs")
        report("packets accounted: rx %d = tx %d + dropped %d (%s); PMD rx %d, PMD tx %d = tx + "
               "%d injected RSTs; kernel ring drops (imissed) %d"
               % (rx, tx, dropped, {k: v for k, v in st["drops"].items() if v}, pmd_rx, pmd_tx,
                  injected, missed))


if __name__ == "__main__":
    main()
