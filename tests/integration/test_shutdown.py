#!/usr/bin/python3
"""Integration test: requests that arrive while l7gate exits.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_shutdown.py -v

DPDK's telemetry thread and the metrics exporter's HTTP threads answer requests on their own
threads until the process is gone, while the main lcore tears down the workers, ports and
names they report on. Threads here ask /l7gate/stats, /l7gate/flows, /l7gate/policy and
/l7gate/top_flows (answered by the workers through the control thread) over
the telemetry socket and scrape /metrics in a tight loop, from start-up until l7gate exits
(--duration 2), several times over: every run must exit 0, with requests answered.
A second case does the same against a start-up failure after the telemetry commands are
registered (the metrics port is taken: exit 2).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import BIN, lcores_arg, note_l7gate, require_binary, udp_frame, write_pcap  # noqa: E402

RUNS = 5
COMMANDS = ("/l7gate/stats", "/l7gate/flows", "/l7gate/policy", "/l7gate/top_flows")
TELEMETRY_THREADS = 3


class Hammer:
    """Threads asking the telemetry commands and scraping /metrics until `proc` exits."""

    def __init__(self, proc, prefix, metrics_url):
        self.proc, self.prefix, self.metrics_url = proc, prefix, metrics_url
        self.lock = threading.Lock()
        self.telemetry_answered = 0   # answers with a value
        self.telemetry_refused = 0    # null answers: not registered yet, or l7gate exiting
        self.metrics_answered = 0
        self.threads = [threading.Thread(target=self.telemetry_loop, daemon=True)
                        for _ in range(TELEMETRY_THREADS)]
        if metrics_url:
            self.threads.append(threading.Thread(target=self.metrics_loop, daemon=True))

    def running(self):
        return self.proc.poll() is None

    def count(self, name):
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def telemetry_loop(self):
        while self.running():
            try:
                with harness.telemetry_connect(self.prefix) as s:
                    while self.running():
                        for c in COMMANDS:
                            answer = harness.telemetry_ask(s, c)
                            self.count("telemetry_answered" if answer is not None else "telemetry_refused")
            except (OSError, ValueError):
                time.sleep(0.001)  # socket not up yet, or going away

    def metrics_loop(self):
        while self.running():
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                    if r.status == 200 and b"l7gate_" in r.read():
                        self.count("metrics_answered")
            except OSError:
                time.sleep(0.001)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(timeout=30)


class ShutdownTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-shutdown-")
        # A few UDP flows replayed endlessly: the workers have flows and counters to report.
        self.pcap = os.path.join(self.work, "udp.pcap")
        write_pcap(self.pcap, [udp_frame(i % 8, 1000 + i % 8, i, 128) for i in range(64)])
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])
        self.prefixes = []

    def tearDown(self):
        for prefix in self.prefixes:
            shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def run_hammered(self, i, extra, metrics_url, env=None):
        """One l7gate run with `extra` options, hammered from start to exit; returns
        (exit code, Hammer)."""
        prefix = "l7gshut%d_%d" % (os.getpid(), len(self.prefixes))
        self.prefixes.append(prefix)
        cmd = [BIN, "--no-huge", "--no-pci", "-m", "512", lcores_arg(2), "--log-level=*:warning",
               "--file-prefix", prefix,
               "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1,tx_pcap=/dev/null" % self.pcap,
               "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % self.empty,
               "--"] + extra
        err_path = os.path.join(self.work, "l7gate-%d.err" % i)
        with open(err_path, "w") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        note_l7gate("%s run %d" % (self.id().rpartition(".")[2], i), path=err_path)
        hammer = Hammer(p, prefix, metrics_url)
        hammer.start()
        try:
            rc = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            hammer.join()
        return rc, hammer

    def test_requests_while_exiting(self):
        totals = [0, 0, 0]
        for i in range(RUNS):
            port = harness.free_port()
            url = "http://127.0.0.1:%d/metrics" % port
            rc, h = self.run_hammered(i, ["--duration", "2", "--metrics", "127.0.0.1:%d" % port], url)
            self.assertEqual(rc, 0, "run %d: l7gate's exit code with requests arriving while it exits "
                             "(-11: SIGSEGV; stderr below)" % i)
            self.assertGreater(h.telemetry_answered, 0, "run %d: no telemetry request answered" % i)
            self.assertGreater(h.metrics_answered, 0, "run %d: no metrics scrape answered" % i)
            totals[0] += h.telemetry_answered
            totals[1] += h.telemetry_refused
            totals[2] += h.metrics_answered
        harness.figure("telemetry answers over %d runs" % RUNS, totals[0])
        harness.figure("telemetry null answers (before registration or while exiting) over %d runs" % RUNS, totals[1])
        harness.figure("metrics scrapes over %d runs" % RUNS, totals[2])

    def test_requests_while_failing_at_start(self):
        # The metrics port is taken: l7gate registered its telemetry commands, then fails.
        # A start-up failure exits without freeing the workers: in the ASan build,
        # LeakSanitizer would turn exit 2 into 1. Use-after-free detection stays on.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            for i in range(RUNS):
                rc, _ = self.run_hammered(i, ["--metrics", "127.0.0.1:%d" % port], None, env)
                self.assertEqual(rc, 2, "run %d: l7gate's exit code with the metrics port taken "
                                 "(-11: SIGSEGV; stderr below)" % i)
                with open(os.path.join(self.work, "l7gate-%d.err" % i)) as f:
                    self.assertIn("cannot listen", f.read())


if __name__ == "__main__":
    harness.main()
