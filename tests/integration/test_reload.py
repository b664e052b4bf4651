#!/usr/bin/python3
"""Integration test: zero-loss policy hot reload under traffic.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_reload.py -v

l7gate replays the generated l7 traffic endlessly (net_pcap infinite_rx) while the policy file
is replaced (write + rename, as editors do) and reloaded with SIGHUP more than 100 times,
alternating policy A (drops SSH) and B (drops HTTP), with invalid files in between. At exit:
every packet is accounted for (rx = tx + policy drops, exactly, and the PMD transmitted what
l7gate counted), every invalid file was refused and counted, and every flow's verdict is one
that policy A or B gives it (a flow dropped under one is let go under the other).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import write_pcap, lcores_arg, BIN, generated_work, load_l7_expect, remove_work  # noqa: E402
from harness import wait_for, read_text  # noqa: E402

BASE = """version: 1
default_policy: other
pools:
  - {{name: lan, ip: [198.18.1.0/24, "2001:db8:100::/48"], policy: {name}}}
policies:
  {name}: {{default: pass, protocols: {{{proto}: drop}}}}
  other: {{default: pass}}
"""
POLICY_A = BASE.format(name="a", proto="SSH")
POLICY_B = BASE.format(name="b", proto="HTTP")
INVALID = [
    POLICY_A.replace("SSH", "NoSuchProtocol"),
    "version: 1\npolicies: [",                          # YAML syntax error
    POLICY_B.replace("default_policy: other", "default_policy: missing"),
]
RELOADS = 110


def sighup_reloads(log):
    """SIGHUP-requested loads in l7gate's log, the refused ones included."""
    return sum("loaded " in ln and " (SIGHUP): generation" in ln or "reload (SIGHUP) failed" in ln
               for ln in log.splitlines())


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.work = generated_work(self, "l7gate-reload-")
        self.expect = load_l7_expect(self.work)

    def tearDown(self):
        remove_work(self.work)

    def replace_file(self, path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    def test_hundred_reloads_lose_nothing(self):
        policy = os.path.join(self.work, "policy.yaml")
        self.replace_file(policy, POLICY_A)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        stats = os.path.join(self.work, "stats.json")
        flows = os.path.join(self.work, "flows.jsonl")
        prefix = "l7greload%d" % os.getpid()
        cmd = [BIN, "--no-huge", "--no-pci", "-m", "1024", lcores_arg(2), "--log-level=*:warning",
               "--file-prefix", prefix,
               "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % os.path.join(self.work, "l7.pcap"),
               "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % empty,
               "--", "--metrics", "off", "--policy", policy, "--mbufs", "16384", "--stats-json", stats,
               "--flow-log", flows, "--flows", "4096"]
        out_path = os.path.join(self.work, "l7gate.out")
        err_path = os.path.join(self.work, "l7gate.err")
        with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
            proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f)
        harness.note_l7gate("reload", path=err_path)
        try:
            # SIGHUP is l7gate's once the banner is out (before it, it would end the process).
            wait_for(lambda: read_text(out_path), 30, "l7gate's banner on stdout",
                     until=lambda out: "port(s) in" in out, proc=proc)
            invalid_sent = 0
            hups = [0]

            def reload(text):
                # Each SIGHUP's load is logged "reloaded ... (SIGHUP)" or "reload (SIGHUP) failed";
                # the next file is written only once this one was read.
                self.replace_file(policy, text)
                proc.send_signal(signal.SIGHUP)
                hups[0] += 1
                wait_for(lambda: sighup_reloads(read_text(err_path)), 10,
                         "the reload of SIGHUP %d (%d SIGHUP reload lines in l7gate's log)"
                         % (hups[0], hups[0]), until=lambda n: n >= hups[0], proc=proc)

            for i in range(RELOADS):
                if i % 10 == 5:
                    reload(INVALID[invalid_sent % len(INVALID)])
                    invalid_sent += 1
                reload(POLICY_A if i % 2 else POLICY_B)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
        err = read_text(err_path)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        with open(stats) as f:
            st = json.load(f)

        # Reloads: every valid file loaded, every invalid one refused and counted.
        pol = st["policy"]
        self.assertGreaterEqual(pol["reloads_ok"], RELOADS)
        self.assertEqual(pol["reloads_failed"], invalid_sent)
        self.assertTrue(pol["last_reload_success"])
        self.assertEqual(err.count("failed with"), invalid_sent, err[-2000:])

        # Accounting: exact.
        t = st["totals"]
        self.assertGreater(t["rx_packets"], 100000)
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])
        self.assertEqual(t["dropped"], st["drops"]["policy"], st["drops"])
        port1 = [p for p in st["ports"] if p["port"] == 1][0]
        self.assertEqual(port1["pmd_tx_packets"], port1["tx_packets"], "the PMD sent what l7gate counted")
        port0 = [p for p in st["ports"] if p["port"] == 0][0]
        self.assertEqual(port0["pmd_rx_packets"], port0["rx_packets"])
        self.assertEqual(port0["imissed"], 0)

        print("reloads ok %d, refused %d; rx %d = tx %d + policy drops %d; PMD tx %d"
              % (pol["reloads_ok"], pol["reloads_failed"], t["rx_packets"], t["tx_packets"],
                 t["dropped"], port1["pmd_tx_packets"]))

        # Verdicts: each flow's is one that A or B gives it (a dropped flow is decided again by
        # the next policy: an SSH flow dropped under A passes under B, issue 18 point 10).
        with open(flows) as f:
            log = [json.loads(line) for line in f]
        self.assertEqual(len(log), st["flows"]["created"])
        by_proto = {}
        for r in log:
            lan = r["src_ip"].startswith(("198.18.1.", "2001:db8:100:"))
            if not lan:
                continue
            master = r["l7_proto"].split(".")[0]
            by_proto.setdefault(master, []).append(r)
            if master == "SSH":
                self.assertIn((r["verdict"], r["verdict_reason"]), (("drop", "a/protocols/SSH"), ("pass", "b/default")), r)
            elif master == "HTTP":
                self.assertIn((r["verdict"], r["verdict_reason"]), (("drop", "b/protocols/HTTP"), ("pass", "a/default")), r)
            else:
                self.assertEqual(r["verdict"], "pass", r)
                self.assertIn(r["verdict_reason"], ("a/default", "b/default"), r)
        self.assertIn("SSH", by_proto)
        self.assertIn("HTTP", by_proto)


if __name__ == "__main__":
    harness.main()
