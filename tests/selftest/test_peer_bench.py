#!/usr/bin/python3
"""The Suricata peer benchmark's own arithmetic and rule generation (perf/run.sh --peers
suricata), checked against hand-computed figures: a wrong rate or a rule Suricata would not
run makes the published comparison wrong without any benchmark failing.

    /usr/bin/python3 tests/selftest/test_peer_bench.py
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "perf"))
import casereport  # noqa: E402
import bench  # noqa: E402

PY = "/usr/bin/python3"
RULES = os.path.join(ROOT, "perf", "suricata", "policy_rules.py")


def eve_stats(pkts, flows, ts="2026-12-06T06:16:46.753342+0000"):
    return json.dumps({"timestamp": ts, "event_type": "stats", "stats": {
        "uptime": 3, "decoder": {"pkts": pkts}, "flow": {"total": flows},
        "capture": {"dpdk": {"imissed": 0}},
        "detect": {"engines": [{"rules_loaded": 14, "rules_failed": 0}], "alert": 7},
        "app_layer": {"flow": {"tls": 5, "dns_udp": 0}}}})


class Arithmetic(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="peer-bench-")
        self.mix = os.path.join(self.dir, "mix.json")
        with open(self.mix, "w") as f:
            json.dump({"avg_frame_bytes": 500.0, "packets": 1000, "flows": 100}, f)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_suricata_rate_is_last_stats_record_over_window(self):
        # Two periodic records, then the one written at shutdown: only the last counts.
        eve = self.write("eve.json", "\n".join([
            eve_stats(100, 1), '{"event_type":"alert"}', eve_stats(2000000, 50),
            eve_stats(12000000, 10000)]) + "\n")
        r = bench.parse_suricata("established", 2, "suricata", eve, "100.0", "105.0", self.mix)
        self.assertAlmostEqual(r["pps"], 12000000 / 5.0)
        self.assertEqual(r["rx_packets"], 12000000)
        self.assertEqual(r["flows"], 10000)
        self.assertEqual(r["alerts"], 7)
        self.assertEqual(r["rules_failed"], 0)
        self.assertEqual(r["app_layer_flows"], {"tls": 5})

    def test_suricata_without_stats_record_is_an_error(self):
        eve = self.write("eve.json", '{"event_type":"alert"}\n')
        with self.assertRaises(SystemExit):
            bench.parse_suricata("established", 1, "suricata", eve, "1", "2", self.mix)

    def test_file_rate_is_the_difference_of_two_passes(self):
        # Head: 20,000 flows in 1.5 s; whole: 200,000 flows in 3.0 s: 180,000 / 1.5 s.
        head = self.write("head.json", eve_stats(170000, 20000) + "\n")
        full = self.write("full.json", eve_stats(1700000, 200000) + "\n")
        r = bench.parse_file("newflow", 1, "suricata", head, "10.0", "11.5", full, "20.0",
                             "23.0", self.mix)
        self.assertAlmostEqual(r["new_flows_s"], 120000.0)
        self.assertAlmostEqual(r["pps"], 1530000 / 1.5)
        self.assertEqual(r["tool"], "suricata-file")

    def test_l7gate_file_run_whose_table_filled_is_refused(self):
        stats = {"totals": {"rx_packets": 10}, "flows": {"created": 5, "table_full": 3}}
        head = self.write("head.json", json.dumps(stats))
        with self.assertRaises(SystemExit):
            bench.parse_file("newflow", 1, "l7gate", head, "0", "1", head, "0", "2", self.mix)

    def test_report_ratios_pair_each_peer_with_the_same_work(self):
        rows = []
        for run, (l7, su, l7p, sup) in enumerate([(8e6, 3e6, 6e6, 2e6), (9e6, 3e6, 6e6, 3e6)], 1):
            for tool, pps in (("l7gate", l7), ("suricata", su), ("l7gate-policy", l7p),
                              ("suricata-policy", sup)):
                rows.append({"tool": tool, "mix": "established", "run": run, "pps": pps,
                             "avg_frame": 500.0, "tsc_hz": 2e9 if tool.startswith("l7") else None})
            rows.append({"tool": "l7gate-file", "mix": "newflow", "run": run, "pps": 1e6,
                         "new_flows_s": 200000.0 * run, "avg_frame": 500.0})
            rows.append({"tool": "suricata-file", "mix": "newflow", "run": run, "pps": 1e6,
                         "new_flows_s": 100000.0, "avg_frame": 500.0})
        raw = self.write("raw.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        meta = self.write("meta.json", json.dumps({
            "mixes": ["established", "newflow"], "runs": 2, "duration": 5,
            "mix_info": {"established": {"packets": 1, "flows": 1, "avg_frame_bytes": 500},
                         "newflow": {"packets": 1, "flows": 1, "avg_frame_bytes": 500}}}))
        text = bench.report(raw, meta)
        line = lambda label: next(ln for ln in text.splitlines() if ln.startswith("| " + label + " |"))
        # l7gate / Suricata per run: 8/3 = 2.67, 9/3 = 3.00 -> min 2.67, median 2.83, max 3.00.
        self.assertTrue(line("Suricata 7 IDS, no rules").endswith("| 2.67 / **2.83** / 3.00 |"), text)
        # Policy rows against each other: 6/2 = 3.00, 6/3 = 2.00.
        self.assertTrue(line("Suricata 7 IDS, the shipped policy as rules").endswith(
            "| 2.00 / **2.50** / 3.00 |"), text)
        # The file rows compare new flows/s: 200k/100k = 2, 400k/100k = 4.
        self.assertTrue(line("Suricata 7 -r, one-pass capture read from the file").endswith(
            "| 2.00 / **3.00** / 4.00 |"), text)


class OnePassCapture(unittest.TestCase):
    """tools/gen_perf_traffic.py --mix onepass repeats flows with rewritten addresses: every
    copy must be new flows with valid checksums, inside the test ranges."""

    def test_readdress_moves_addresses_and_keeps_checksums_valid(self):
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import ipaddress
        import gen_perf_traffic as g
        from scapy.all import IP, TCP, UDP, Ether, IPv6
        eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        frames = [
            eth / IP(src="198.18.5.79", dst="198.19.1.201") / TCP(sport=32774, dport=443, flags="S"),
            eth / IP(src="198.18.7.250", dst="198.19.1.1") / UDP(sport=40000, dport=53) / b"query",
            eth / IPv6(src="2001:db8:100::7", dst="2001:db8:200::1") / TCP(sport=1, dport=443) / (b"x" * 33),
            eth / IPv6(src="2001:db8:100::7", dst="2001:db8:200::1") / UDP(sport=2, dport=443) / (b"y" * 50),
        ]
        nets = [ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32")]
        for fr in frames:
            raw = bytes(fr)
            seen = set()
            for copy in range(20):
                out = g.readdress(raw, copy)
                pkt = Ether(out)
                ip = pkt[IP] if IP in pkt else pkt[IPv6]
                seen.add((ip.src, ip.dst))
                for a in (ip.src, ip.dst):
                    self.assertTrue(any(ipaddress.ip_address(a) in n for n in nets), a)
                # Checksums as scapy computes them for the rewritten packet.
                again = Ether(out)
                for layer in (IP, TCP, UDP):
                    if layer in again:
                        del again[layer].chksum
                self.assertEqual(bytes(Ether(bytes(again))).hex(), out.hex(), (copy, fr.summary()))
            self.assertEqual(len(seen), 20, fr.summary())

    def test_ipv4_udp_without_checksum_keeps_zero(self):
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import gen_perf_traffic as g
        from scapy.all import IP, UDP, Ether
        raw = bytearray(bytes(Ether() / IP(src="198.18.0.1", dst="198.19.0.1") / UDP(sport=1, dport=2)))
        raw[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
        out = g.readdress(bytes(raw), 3)
        self.assertEqual(out[14 + 20 + 6:14 + 20 + 8], b"\0\0")
        self.assertNotEqual(out[26:34], bytes(raw[26:34]))


class Rules(unittest.TestCase):
    def generate(self, policy_text, files=None):
        d = tempfile.mkdtemp(prefix="peer-rules-")
        for name, text in (files or {}).items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        path = os.path.join(d, "policy.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(policy_text))
        p = subprocess.run([PY, RULES, path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        rules = [ln for ln in p.stdout.splitlines() if ln and not ln.startswith("#")]
        gaps = [ln for ln in p.stdout.splitlines() if ln.startswith("#   ")]
        return rules, gaps

    POLICY = """
        version: 1
        default_policy: guest
        lists:
          ads: {hostnames: ["*.doubleclick.net", "Ads.Example.com."]}
          bad: {file: bad.txt}
        pools:
          - {name: office, ip: [198.18.1.0/24, "2001:db8:100::/48"], policy: office}
        policies:
          root: {default: pass, protocols: {Tor: drop, SSH: drop}, risks: {url_possible_xss: drop}}
          office:
            parent: root
            protocols: {HTTP: pass, BitTorrent: "shape:perhost"}
            categories: {Video: "shape:bulk"}
            hostnames: {"www.youtube.com": drop, "@ads": reject, "ok.example": pass}
            ips: {"@bad": drop}
          guest: {parent: root, categories: {Game: drop}}
        """

    def test_shipped_shape_translates_markers_and_lists_the_rest(self):
        rules, gaps = self.generate(self.POLICY, {"bad.txt": "# bad peers\n198.19.1.21\n2001:db8:dead::/48\n"})
        office = "[198.18.1.0/24,2001:db8:100::/48]"
        host = [r for r in rules if "hostname" in r]
        # 3 blocking names x 4 keywords; the pass marker makes none.
        self.assertEqual(len(host), 12, rules)
        self.assertTrue(all(r.startswith("drop ") and (" %s any -> any any " % office) in r for r in host))
        self.assertFalse(any("ok.example" in r for r in rules))
        # Wildcards match the suffix, exact names both ends; names are lowercased, the
        # trailing dot dropped; Suricata refuses nocase on http.host.
        self.assertTrue(any('tls.sni; content:".doubleclick.net"; nocase; endswith;' in r for r in host))
        self.assertTrue(any('tls.sni; content:"ads.example.com"; nocase; startswith; endswith;' in r for r in host))
        self.assertFalse(any("http.host" in r and "nocase" in r for r in host))
        ips = [r for r in rules if " ips " in r]
        self.assertEqual(len(ips), 2, rules)
        self.assertTrue(any("drop ip %s any <> 198.19.1.21 any " % office in r for r in ips))
        # A root marker applies to every host (guest is the default policy under root).
        self.assertTrue(any(r.startswith("drop ssh any any -> any any ") for r in rules), rules)
        # Unique sids.
        sids = [r.split("sid:")[1].split(";")[0] for r in rules]
        self.assertEqual(len(sids), len(set(sids)))
        text = "\n".join(gaps)
        for gap in ("protocol Tor", "risks url_possible_xss", "categories Video",
                    "categories Game", "protocol BitTorrent: shape:perhost"):
            self.assertIn(gap, text)

    def test_shipped_policy_generates(self):
        p = subprocess.run([PY, RULES, os.path.join(ROOT, "config", "demo-policy.yaml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("www.youtube.com", p.stdout)
        self.assertIn("198.19.1.21", p.stdout)


if __name__ == "__main__":
    casereport.main()
