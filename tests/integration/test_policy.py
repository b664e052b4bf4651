#!/usr/bin/python3
"""Integration tests: the policy engine acting on generated traffic through the real binary.

Run by meson or directly:

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_policy.py -v

Traffic: tools/gen_traffic.py --set l7 (17 flows of known protocols, hostnames and risks,
replayed into port 0 in capture order with --clock capture). GeoIP: the generated test
database tests/data/geoip-test.mmdb (198.18.0.0/24 is IT, 198.19.0.0/17 US, ...).
Expectations come from the generator's l7-expect.json and the policy written here, never from
l7gate's output.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import (read_pcap, write_pcap, run_l7gate, frame_flow_key,  # noqa: E402
                     BIN, require_binary, generate, load_l7_expect, remove_work)

TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")
GEOIP = os.path.join(TOOLS, "..", "tests", "data", "geoip-test.mmdb")

POLICY = """
version: 1
default_policy: other
lists:
  blocked_names: {hostnames: ["*.youtube.com"]}
pools:
  - {name: lan, ip: [198.18.1.0/24, "2001:db8:100::/48"], policy: lan}
policies:
  root:
    default: pass
    risks: {url_possible_sql_injection: drop}
  lan:
    parent: root
    default: pass
    protocols: {SSH: drop}
    hostnames: {"@blocked_names": drop}
    countries: {IT: drop}
  other: {parent: root}
"""

# flow name in l7-expect.json -> (verdict, reason)
EXPECTED = {
    "ssh": ("drop", "lan/protocols/SSH"),
    "ssh-port-2222": ("drop", "lan/protocols/SSH"),
    "tls13-youtube": ("drop", "lan/hostnames/@blocked_names"),
    "http-sql-injection": ("drop", "root/risks/url_possible_sql_injection"),
    "http-numeric-host": ("drop", "lan/countries/IT"),   # server 198.18.0.10 is IT
}
DEFAULT = ("pass", "lan/default")

WORK = None


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="l7gate-policy-")


def tearDownModule():
    remove_work(WORK)


def flow_key(l4, a, ap, b, bp):
    return (l4, frozenset([(a, ap), (b, bp)]))


class PolicyTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if not os.path.exists(GEOIP):
            self.skipTest("GeoIP fixture %s missing" % GEOIP)
        gen = os.path.join(WORK, "gen")
        if not os.path.exists(os.path.join(gen, "l7.pcap")):
            os.makedirs(gen, exist_ok=True)
            generate(self, gen)
        self.gen = gen
        self.expect = load_l7_expect(gen)
        self.policy = os.path.join(WORK, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(POLICY)

    def run_policy(self, name, extra=()):
        empty = os.path.join(WORK, "empty.pcap")
        write_pcap(empty, [])
        flows = os.path.join(WORK, name + "-flows.jsonl")
        r = run_l7gate(WORK, name, [[os.path.join(self.gen, "l7.pcap")], [empty]],
                       ["--clock", "capture", "--flow-log", flows, "--policy", self.policy,
                        "--geoip", GEOIP] + list(extra))
        self.assertEqual(r.rc, 0, r.describe())
        with open(flows) as f:
            log = [json.loads(line) for line in f]
        return r, log

    def test_verdicts_in_flow_log(self):
        r, log = self.run_policy("verdicts")
        by_key = {flow_key(x["l4_proto"], x["src_ip"], x["src_port"], x["dst_ip"], x["dst_port"]): x
                  for x in log}
        for e in self.expect:
            k = flow_key(e["l4"], e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"])
            self.assertIn(k, by_key, "no flow-log line for %s" % e["name"])
            got = by_key[k]
            want = EXPECTED.get(e["name"], DEFAULT)
            self.assertEqual((got["verdict"], got["verdict_reason"]), want, e["name"])

    def test_dropped_flows_stop_and_others_pass_untouched(self):
        r, log = self.run_policy("forwarding")
        frames = read_pcap(os.path.join(self.gen, "l7.pcap"))
        out = read_pcap(r.outs[1][0])
        # Each frame's flow, by its 5-tuple against the generator's expectations.
        drop_names = set(EXPECTED)
        names = {flow_key(e["l4"], e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"]): e["name"]
                 for e in self.expect}
        frame_flow = {i: names.get(frame_flow_key(fr)) for i, fr in enumerate(frames)}
        # The output must be the input minus, for each dropped flow, a tail starting at the
        # packet that decided it; passing flows keep every frame, and order is kept.
        it = iter(out)
        nxt = next(it, None)
        missing = {}
        for i, fr in enumerate(frames):
            if nxt is not None and fr == nxt:
                flow = frame_flow.get(i)
                self.assertFalse(flow in missing, "%s: frame %d forwarded after the flow was dropped"
                                 % (flow, i))
                nxt = next(it, None)
                continue
            flow = frame_flow.get(i)
            self.assertIn(flow, drop_names, "frame %d of passing flow %s was not forwarded" % (i, flow))
            missing.setdefault(flow, 0)
            missing[flow] += 1
        self.assertIsNone(nxt, "output holds frames that are not in the input")
        self.assertEqual(set(missing), drop_names, "every dropped flow lost at least one frame")
        st = r.stats
        self.assertEqual(st["drops"]["policy"], sum(missing.values()))
        self.assertEqual(st["totals"]["rx_packets"], st["totals"]["tx_packets"] + st["totals"]["dropped"])
        # The SQL injection request itself never reaches the server: the flow loses its
        # request and everything after it.
        sqli = [e for e in self.expect if e["name"] == "http-sql-injection"][0]
        self.assertGreaterEqual(missing["http-sql-injection"], sqli["c2s_packets"] - 3 + sqli["s2c_packets"] - 1)

    def test_check_accepts_the_policy_and_rejects_a_broken_one(self):
        p = subprocess.run([BIN, "--check", "--policy", self.policy, "--geoip", GEOIP],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        bad = os.path.join(WORK, "bad.yaml")
        text = POLICY.replace("SSH: drop", "SHH: drop").replace("IT: drop", "ITALY: drop")
        with open(bad, "w") as f:
            f.write(text)
        shh_line = [i + 1 for i, ln in enumerate(text.splitlines()) if "SHH" in ln][0]
        shh_col = text.splitlines()[shh_line - 1].index("SHH") + 1
        p = subprocess.run([BIN, "--check", "--policy", bad, "--geoip", GEOIP],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        lines = sorted(p.stderr.strip().splitlines(), key=lambda ln: "ITALY" in ln)
        self.assertEqual(len(lines), 2, p.stderr)
        self.assertTrue(lines[0].startswith("%s:%d:%d: " % (bad, shh_line, shh_col)), lines[0])
        self.assertIn("'SSH'", lines[0])   # the suggestion
        self.assertIn("ITALY", lines[1])
        # Without a GeoIP database, countries are an error, not a silent no-op.
        p = subprocess.run([BIN, "--check", "--policy", self.policy], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--geoip", p.stderr)

    def test_invalid_policy_stops_startup_with_exit_2(self):
        bad = os.path.join(WORK, "bad2.yaml")
        with open(bad, "w") as f:
            f.write(POLICY.replace("parent: root\n    default", "parent: rooot\n    default"))
        empty = os.path.join(WORK, "empty.pcap")
        write_pcap(empty, [])
        r = run_l7gate(WORK, "badstart", [[os.path.join(self.gen, "l7.pcap")], [empty]],
                       ["--policy", bad, "--geoip", GEOIP], log_level="*:error")
        self.assertEqual(r.rc, 2, r.describe())
        self.assertIn("rooot", r.stderr)
        self.assertEqual(read_pcap(r.outs[1][0]), [], "no traffic may move with an invalid policy")


NPROBE_EXAMPLE = """\
{ "pool": { "id":1, "name": "my pool 1", "ip":  [ "192.168.0.1/24", "10.0.0.0/8", "2a03:b0c0:2:d0::360:4001/48"], "mac": [] }, "policy": { "id":1 }}
{ "pool": { "id":2, "name": "my pool 2", "mac": ["e8:06:88:ff:fe:e4", "02:81:27:b5:f9:f3", "00:01:01:e4:ba:2c"],  "ip":  ["172.16.0.0/16"] }, "policy": { "id":2 }}
{ "pool": { "id":3, "name": "my pool 3", "ip":  [ "131.114.0.0/16" ], "mac": [] }, "policy": { "id": 3 }}
{ "policy": { "id": 0, "name": "root rule", "default_marker": "pass", "flow_risk": { "risks": [ 12 ], "marker": "drop" }, "markers": { "categories": { "Video": "drop" }, "protocols": { "TLS": "pass" }}}}
{ "policy": { "id": 1, "root": 0, "name": "my rule 1", "default_marker": "pass", "markers": { "protocols": { "HTTP": "pass" }, "countries": { "IT": "pass", "CN": "drop" }, "continents" : { "Asia" : "drop"}}}}
{ "policy": { "id": 3, "root": 0, "name": "my rule 3", "default_marker": "pass", "markers": { "protocols": { "HTTP": "drop" }}}}
{ "policy": { "id": 2, "root":1, "name": "my subrule 2 (son of rule 1)", "default_marker": "drop", "markers": { "protocols": { "53": "pass" }}, "hostnames": { "fundingchoicesmessages.google.com": "pass", "www.gstatic.com": "drop", "www.youtube.com": "pass" }}}
"""


class ToolsTest(unittest.TestCase):
    """The command-line side of the policy engine: --convert-policy and nDPI custom files."""

    def setUp(self):
        if not BIN or not os.access(BIN, os.X_OK):
            self.skipTest("L7GATE_BIN does not name the l7gate binary")

    def test_convert_policy_prints_yaml_that_checks(self):
        src = os.path.join(WORK, "nprobe.json")
        with open(src, "w") as f:
            f.write(NPROBE_EXAMPLE)
        p = subprocess.run([BIN, "--convert-policy", src], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("my subrule 2 (son of rule 1)", p.stdout)
        out = os.path.join(WORK, "converted.yaml")
        with open(out, "w") as f:
            f.write(p.stdout)
        p = subprocess.run([BIN, "--check", "--policy", out, "--geoip", GEOIP], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("OK: 4 policies, 3 pools", p.stdout)
        # The JSON itself loads the same way (format detected by content).
        p = subprocess.run([BIN, "--check", "--policy", src, "--geoip", GEOIP], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_custom_protocol_file_names_flows_and_policies(self):
        if os.geteuid() != 0:
            self.skipTest("DPDK vdevs need root")
        gen = os.path.join(WORK, "gen-custom")
        os.makedirs(gen, exist_ok=True)
        generate(self, gen)
        protos = os.path.join(WORK, "protos.txt")
        with open(protos, "w") as f:
            f.write('host:"static.example.net"@MyStatic\n')
        pol = os.path.join(WORK, "custom.yaml")
        with open(pol, "w") as f:
            f.write("version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, protocols: {MyStatic: drop}}\n")
        empty = os.path.join(WORK, "empty.pcap")
        write_pcap(empty, [])
        flows = os.path.join(WORK, "custom-flows.jsonl")
        r = run_l7gate(WORK, "custom", [[os.path.join(gen, "l7.pcap")], [empty]],
                       ["--clock", "capture", "--flow-log", flows, "--ndpi-protos", protos, "--policy", pol])
        self.assertEqual(r.rc, 0, r.describe())
        with open(flows) as f:
            log = [json.loads(x) for x in f]
        mine = [x for x in log if x["host"] == "static.example.net"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["l7_proto"], "TLS.MyStatic")   # as ndpiReader -p prints it
        self.assertEqual((mine[0]["verdict"], mine[0]["verdict_reason"]), ("drop", "p/protocols/MyStatic"))
        others = [x for x in log if x["host"] != "static.example.net"]
        self.assertTrue(all(x["verdict"] == "pass" for x in others))


if __name__ == "__main__":
    harness.main()
