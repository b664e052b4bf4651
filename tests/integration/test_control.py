#!/usr/bin/python3
"""Integration tests: the interactive prompt and the DPDK telemetry commands.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_control.py -v

l7gate replays the generated l7 traffic endlessly (infinite_rx) with config/demo-policy.yaml, so
its 17 flows stay active while commands arrive on a pipe (`-i`) or over the telemetry socket.
"""

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import write_pcap, lcores_arg, BIN, require_binary, generate  # noqa: E402

PY = "/usr/bin/python3"
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")
POLICY = os.path.join(TOOLS, "..", "config", "demo-policy.yaml")


class ControlTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-control-")
        generate(self, self.work)
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])
        self.prefix = "l7gctl%d" % os.getpid()

    def tearDown(self):
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def cmd(self, extra):
        return [BIN, "--no-huge", "--no-pci", "-m", "1024", lcores_arg(2), "--log-level=*:warning",
                "--file-prefix", self.prefix,
                "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % os.path.join(self.work, "l7.pcap"),
                "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % self.empty,
                "--", "--metrics", "off", "--policy", POLICY, "--mbufs", "16384"] + extra

    def start(self, extra, stdin=None):
        """l7gate with `extra` options; its stderr goes to a file noted for failure messages."""
        self.err_path = os.path.join(self.work, "l7gate.err")
        with open(self.err_path, "w") as err:
            p = subprocess.Popen(self.cmd(extra), stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                                 text=True)
        harness.note_l7gate(self.id().rpartition(".")[2], path=self.err_path)
        return p

    def wait_classified(self, p):
        """Waits (telemetry) until the traffic's 17 flows are there and every one classified."""
        harness.wait_for(lambda: harness.telemetry(self.prefix, "/l7gate/stats")["/l7gate/stats"],
                         30, "every flow classified (telemetry /l7gate/stats: flows_created >= 17, "
                         "classified = flows_created)",
                         until=lambda st: st["flows_created"] >= 17 and st["classified"] >= st["flows_created"],
                         proc=p)

    def test_prompt_from_a_pipe(self):
        p = self.start(["-i"], stdin=subprocess.PIPE)
        try:
            self.wait_classified(p)
            script = ("help\nshow port stats\nshow flows 20\nshow hosts\nshow policy\nreload\nshow policy\n"
                      "set stats-interval 0\nshow flows 0\nno such command\n")
            p.stdin.write(script)
            p.stdin.flush()
            # Closing stdin ends the prompt after the lines it has read: all of the script.
            out, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, "l7gate's exit code (stderr below)")
        self.assertIn("show flows [N]", out)                          # help
        self.assertRegex(out, r"port 0 \(net_pcap\)\n  rx [1-9]\d* packets")
        # show flows: the 17 active flows, largest first, with their verdicts and reasons.
        lines = [ln for ln in out.splitlines() if ln.startswith(("TCP ", "UDP ", "IP  "))]
        self.assertEqual(len(lines), 17, out)
        youtube = [ln for ln in lines if "www.youtube.com" in ln]
        self.assertEqual(len(youtube), 1)
        self.assertIn("drop", youtube[0])
        self.assertIn("office/hostnames/www.youtube.com", youtube[0])
        sizes = []
        for ln in lines:
            m = re.search(r"\s(\d+)\s+(\d+)\s+(pass|drop|reject|(?:shape|police):\S+)\s", ln)
            self.assertIsNotNone(m, ln)
            sizes.append(int(m.group(2)))
        self.assertEqual(sizes, sorted(sizes, reverse=True), "largest flows first")
        torrent = [ln for ln in lines if "BitTorrent" in ln]
        self.assertTrue(torrent)
        for ln in torrent:
            self.assertIn(" shape:perhost ", ln, "the verdict names the shaper")
        # show hosts: the hosts with risk scores, the SQL-injection client among them (225).
        self.assertRegex(out, r"198\.18\.1\.19\s+225\s+225\s+0\s+no")
        self.assertIn("blocked now 0, blocks since start 0", out)
        # show policy before and after the reload.
        self.assertIn("generation 1\n", out)
        self.assertIn("reloaded: generation 2", out)
        self.assertIn("generation 2\n", out)
        self.assertIn("stats-interval 0 s", out)
        self.assertIn("show flows: N must be from 1 to 100", out)
        self.assertIn("unknown command 'no such command'", out)
        self.assertIn("stopping (quit)", out)

    def test_telemetry_commands(self):
        p = self.start(["--duration", "6"])
        try:
            self.wait_classified(p)
            answers = harness.telemetry(self.prefix, "/", "/l7gate/stats", "/l7gate/flows",
                                        "/l7gate/policy", "/l7gate/top_flows")
            with harness.telemetry_connect(self.prefix) as s:  # DPDK answers under the bare name
                s.send(b"/l7gate/top_flows,5")
                top = json.loads(s.recv(1 << 20))["/l7gate/top_flows"]
            out, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, "l7gate's exit code (stderr below)")
        for c in ("/l7gate/stats", "/l7gate/flows", "/l7gate/policy", "/l7gate/top_flows"):
            self.assertIn(c, answers["/"])
        st = answers["/l7gate/stats"]
        self.assertGreater(st["rx_packets"], 0)
        self.assertEqual(st["rx_packets"], st["port0_rx_packets"])
        self.assertEqual(st["flows_created"], 17)
        self.assertGreater(st["drop_policy"], 0)
        self.assertEqual(answers["/l7gate/flows"]["worker0_active"], 17)
        # The workers' largest flows, asked through their command rings by the control thread.
        self.assertEqual(top["partial"], 0, top)
        self.assertEqual(top["timed_out"], "")
        self.assertEqual(len(top["flows"]), 5, top)
        sizes = [int(f.rsplit(" ", 1)[1]) for f in top["flows"]]
        self.assertEqual(sizes, sorted(sizes, reverse=True), top)
        self.assertTrue(all(f.startswith(("TCP ", "UDP ", "IP ")) for f in top["flows"]), top)
        self.assertEqual(len(answers["/l7gate/top_flows"]["flows"]), 10)
        pol = answers["/l7gate/policy"]
        self.assertEqual(pol["generation"], 1)
        self.assertTrue(pol["source"].endswith("policy.yaml"))


if __name__ == "__main__":
    harness.main()
