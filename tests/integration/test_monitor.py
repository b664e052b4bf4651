#!/usr/bin/python3
"""Integration tests: monitor mode through the real binary (issue 20, point 1).

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_monitor.py -v

Two clients, each in its own pool: 198.18.1.10 (policy `prod`, enforcing) and 198.18.2.10
(policy `trial`, `enforce: false`), each opening one TCP flow to each of five servers whose
`ips` markers pass, drop, reject, shape and police them. One run with the policy as written,
one with --mode monitor (every policy monitors). Checked on the pcap outputs: which packets
were forwarded, which RSTs were injected; in the flow log, `verdict` and `enforced`; in the
stats JSON, monitor_forwarded by verdict.
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
from harness import read_pcap, write_pcap, run_l7gate, require_binary  # noqa: E402

try:
    from scapy.all import Ether, IP, TCP, raw  # noqa: E402
except ImportError:  # reported by setUp
    Ether = None

POLICY = """
version: 1
default_policy: prod
shapers:
  slow: {rate: 8kbit, burst: 2kb}
pools:
  - {name: prod, ip: [198.18.1.0/24], policy: prod}
  - {name: trial, ip: [198.18.2.0/24], policy: trial}
policies:
  base:
    default: pass
    ips: {198.19.1.1: drop, 198.19.1.2: reject, 198.19.1.3: "shape:slow", 198.19.1.4: "police:slow"}
  prod: {parent: base}
  trial: {parent: base, enforce: false}
"""

CLIENTS = {"prod": "198.18.1.10", "trial": "198.18.2.10"}
SERVERS = {"pass": "198.19.1.5", "drop": "198.19.1.1", "reject": "198.19.1.2",
           "shape": "198.19.1.3", "police": "198.19.1.4"}
DATA = 12  # client data segments per flow, 1,000 bytes each


def flow_frames(client, server, sport, t0):
    """A TCP handshake and DATA data segments from the client: (time in us, frame) pairs."""
    cm, sm = "02:00:00:00:00:01", "02:00:00:00:00:02"
    c = lambda fl, seq, ack, pay=b"": Ether(src=cm, dst=sm) / IP(src=client, dst=server) / \
        TCP(sport=sport, dport=8000, flags=fl, seq=seq, ack=ack) / pay
    s = lambda fl, seq, ack: Ether(src=sm, dst=cm) / IP(src=server, dst=client) / \
        TCP(sport=8000, dport=sport, flags=fl, seq=seq, ack=ack)
    out = [c("S", 1000, 0), s("SA", 5000, 1001), c("A", 1001, 5001)]
    for i in range(DATA):
        out.append(c("PA", 1001 + 1000 * i, 5001, bytes([0x41 + i % 20]) * 1000))
    return [(t0 + i * 1000, raw(p)) for i, p in enumerate(out)]


class MonitorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = None
        if Ether is None:
            return
        cls.work = tempfile.mkdtemp(prefix="l7gate-monitor-")
        cls.policy = os.path.join(cls.work, "policy.yaml")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        # Every flow from both clients on port 0, interleaved in time.
        records = []
        sport = 40000
        for who, client in sorted(CLIENTS.items()):
            for verdict, server in sorted(SERVERS.items()):
                sport += 1
                records += flow_frames(client, server, sport, 1700000000 * 1000000 + len(records) * 100)
        records.sort(key=lambda r: r[0])
        cls.frames = [f for _, f in records]
        cls.input = os.path.join(cls.work, "in.pcap")
        harness.write_pcap_records(cls.input, records)
        cls.empty = os.path.join(cls.work, "empty.pcap")
        write_pcap(cls.empty, [])
        cls.runs = {}

    @classmethod
    def tearDownClass(cls):
        if cls.work:
            shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        require_binary(self)

    def run_mode(self, mode):
        """One l7gate run per mode, shared by the tests: (run, flow log records by (client, verdict))."""
        if mode not in self.runs:
            log = os.path.join(self.work, mode + "-flows.jsonl")
            args = ["--clock", "capture", "--policy", self.policy, "--flow-log", log, "--reject-rate", "1000"]
            if mode == "monitor":
                args += ["--mode", "monitor"]
            r = run_l7gate(self.work, mode, [[self.input], [self.empty]], args)
            self.assertEqual(r.rc, 0, r.describe())
            flows = {}
            with open(log) as f:
                for line in f:
                    rec = json.loads(line)
                    if rec.get("type", "flow") != "flow":
                        continue
                    who = [k for k, v in CLIENTS.items() if v in (rec["src_ip"], rec["dst_ip"])][0]
                    what = [k for k, v in SERVERS.items() if v in (rec["src_ip"], rec["dst_ip"])][0]
                    flows[(who, what)] = rec
            self.runs[mode] = (r, flows)
        return self.runs[mode]

    def sent_by(self, client, server):
        return [f for f in self.frames if IP in Ether(f) and Ether(f)[IP].src == client and Ether(f)[IP].dst == server]

    def check(self, mode, who, enforced):
        r, flows = self.run_mode(mode)
        out1 = set(read_pcap(r.outs[1][0]))
        back = [Ether(f) for f in read_pcap(r.outs[0][0])]
        client = CLIENTS[who]
        for verdict, server in SERVERS.items():
            rec = flows[(who, verdict)]
            self.assertEqual(rec["verdict"], "pass" if verdict == "pass" else
                             verdict + ":slow" if verdict in ("shape", "police") else verdict, rec)
            self.assertIs(rec["enforced"], enforced, rec)
            sent = self.sent_by(client, server)
            passed = [f for f in sent if f in out1]
            rst = [p for p in back if TCP in p and p[TCP].flags & 0x04 and p[IP].dst == client and
                   p[IP].src == server]
            if verdict == "pass" or not enforced:
                self.assertEqual(len(passed), len(sent), "%s %s: every packet forwarded" % (who, verdict))
            elif verdict in ("drop", "reject"):
                self.assertEqual(passed, [], "%s %s: nothing forwarded" % (who, verdict))
            else:
                self.assertLess(len(passed), len(sent), "%s %s: 8 kbit/s holds some back" % (who, verdict))
            if verdict == "reject" and enforced:
                self.assertGreater(len(rst), 0, "%s: the reject verdict sends a RST" % who)
            else:
                self.assertEqual(rst, [], "%s %s: no RST" % (who, verdict))

    def test_enforcing_policy_applies_its_verdicts(self):
        self.check("policy", "prod", True)

    def test_enforce_false_policy_forwards_and_records(self):
        self.check("policy", "trial", False)
        r, _ = self.run_mode("policy")
        mon = r.stats["monitor_forwarded"]
        # The trial client's packets of each verdict: the SYN, the ACK, the data segments; the
        # server's SYN-ACK too (it is the same flow).
        per_flow = 3 + DATA
        for verdict in ("drop", "reject", "shape", "police"):
            self.assertEqual(mon[verdict]["packets"], per_flow, (verdict, mon))
            self.assertGreater(mon[verdict]["bytes"], DATA * 1000)
        self.assertEqual(mon["block"]["packets"], 0)
        self.check_uninspected(r.stats)

    def test_mode_monitor_forwards_everything(self):
        self.check("monitor", "prod", False)
        self.check("monitor", "trial", False)
        r, _ = self.run_mode("monitor")
        self.assertEqual(r.stats["drops"]["policy"], 0)
        self.assertEqual(r.stats["injected"]["sent"], 0)
        mon = r.stats["monitor_forwarded"]
        for verdict in ("drop", "reject", "shape", "police"):
            self.assertEqual(mon[verdict]["packets"], 2 * (3 + DATA), (verdict, mon))
        self.check_uninspected(r.stats)

    def check_uninspected(self, stats):
        # What monitor mode forwarded against a dropping verdict is uninspected traffic, cause
        # monitor (README "What is not inspected"); would-shape traffic is not.
        mon, unin = stats["monitor_forwarded"], stats["uninspected"]["monitor"]
        for unit in ("packets", "bytes"):
            self.assertEqual(unin[unit], sum(mon[v][unit] for v in ("drop", "reject", "block")), (unit, unin, mon))
        self.assertGreater(unin["packets"], 0)


if __name__ == "__main__":
    harness.main()
