#!/usr/bin/python3
"""Integration tests: the flow-record stream and the flow log (issue 19).

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_records.py -v

Traffic: a capture of SYNs replayed endlessly (net_pcap infinite_rx) with --bench-fresh-flows,
so every pass of the capture is new half-open flows; --timeouts tcp-syn=1 ends them after a
second, so flow records keep coming while l7gate runs.

- Rotation: the flow log is renamed and l7gate told to reopen it three times while records
  flow (SIGUSR1 twice, the prompt's `reopen logs` once); at exit every record is in exactly one
  of the four files, each line whole JSON, and their number is what the workers produced.
- Append: a second run on the last file keeps its lines and adds its own after them.
- Livelock (the issue's test): a full-rate SYN flood with --flow-log on a FIFO the test reads
  slowly, --metrics on loopback and a policy: a SIGHUP reload is applied within 1 s, /metrics
  answers within 1 s, SIGTERM ends l7gate within 2 s, and the records read from the FIFO plus
  the records counted lost equal the flow records produced.
"""

import errno
import json
import os
import random
import shutil
import signal
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
import hostile  # noqa: E402
from harness import BIN, lcores_arg, read_text, require_binary, wait_for, write_pcap  # noqa: E402

SYNS = 2000  # SYNs per pass of the capture (each pass new flows)

POLICY_A = """version: 1
default_policy: other
pools:
  - {name: lan, ip: [198.18.0.0/16], policy: lan}
policies:
  lan: {default: pass}
  other: {default: pass}
"""
POLICY_B = POLICY_A.replace("lan: {default: pass}", "lan: {default: drop}")


def syn_capture(path):
    rng = random.Random(19)
    frames, seen = [], set()
    while len(frames) < SYNS:
        fr = hostile.syn(rng)
        key = fr[26:38]  # addresses and ports
        if key not in seen:
            seen.add(key)
            frames.append(fr)
    write_pcap(path, frames)


def parse_lines(text, what):
    """The records of a flow log's text: every line must be a whole JSON object."""
    recs = []
    for n, ln in enumerate(text.split("\n")[:-1], 1):
        try:
            recs.append(json.loads(ln))
        except ValueError:
            raise AssertionError("%s line %d is not JSON (torn?): %r" % (what, n, ln[:200]))
    if text and not text.endswith("\n"):
        raise AssertionError("%s ends in half a line: %r" % (what, text[-200:]))
    return recs


def flow_id(r):
    return (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["ts_first"])


class RecordsTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-records-")
        self.syns = os.path.join(self.work, "syns.pcap")
        syn_capture(self.syns)
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])
        self.prefix = "l7grec%d" % os.getpid()
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self, name, extra, infinite=True, stdin=None):
        rx = "rx_pcap=%s%s" % (self.syns, ",infinite_rx=1" if infinite else "")
        cmd = [BIN, "--no-huge", "--no-pci", "-m", "1024", lcores_arg(2), "--log-level=*:warning",
               "--file-prefix", self.prefix,
               "--vdev", "net_pcap0," + rx,
               "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % self.empty,
               "--", "--timeouts", "tcp-syn=1", "--stats-json", os.path.join(self.work, name + ".json")]
        if infinite:
            cmd += ["--bench-fresh-flows", str(SYNS), "--bench-fresh-syns"]
        if "--metrics" not in extra:
            cmd += ["--metrics", "off"]
        cmd += extra
        self.out_path = os.path.join(self.work, name + ".out")
        self.err_path = os.path.join(self.work, name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, text=True)
        harness.note_l7gate(name, path=self.err_path)
        # Signals are l7gate's once its banner is out (before it, SIGUSR1 would end it).
        wait_for(lambda: read_text(self.out_path), 30, "l7gate's banner on stdout",
                 until=lambda out: "port(s) in" in out, proc=self.proc)
        return self.proc

    def stats(self, name):
        with open(os.path.join(self.work, name + ".json")) as f:
            return json.load(f)

    def test_1_rotation_loses_nothing_and_a_restart_appends(self):
        log = os.path.join(self.work, "flows.jsonl")
        p = self.start("rotate", ["--flow-log", log, "--flows", "4096", "-i"], stdin=subprocess.PIPE)

        def lines(path):
            return read_text(path).count("\n")

        # Three rotations while records flow: rename, then ask for a reopen; the next file
        # must receive records before the next rotation.
        for i, how in enumerate(("SIGUSR1", "SIGUSR1", "prompt"), 1):
            wait_for(lambda: lines(log), 20, "records in %s" % log, proc=p)
            os.rename(log, "%s.%d" % (log, i))
            if how == "SIGUSR1":
                p.send_signal(signal.SIGUSR1)
            else:
                p.stdin.write("reopen logs\n")
                p.stdin.flush()
            wait_for(lambda: lines(log), 20, "records in the reopened %s (rotation %d, %s)" % (log, i, how),
                     proc=p)
        p.stdin.close()  # end of input: quit
        self.assertEqual(p.wait(timeout=30), 0, read_text(self.err_path)[-3000:])
        self.assertIn("flow_log: reopened", read_text(self.out_path), "the prompt's answer")

        seen = {}
        files = ["%s.%d" % (log, i) for i in (1, 2, 3)] + [log]
        for path in files:
            recs = parse_lines(read_text(path), path)
            self.assertGreater(len(recs), 0, path)
            for r in recs:
                k = flow_id(r)
                self.assertNotIn(k, seen, "record twice: in %s and %s" % (seen.get(k), path))
                seen[k] = path
        st = self.stats("rotate")
        fl = st["flow_log"]
        sink = fl["sinks"]["flow_log"]
        produced = fl["records"] + fl["lost"]
        self.assertEqual(sink["lost"], {"ring_full": 0, "sink_full": 0, "write_error": 0, "shutdown": 0})
        self.assertEqual(sink["written"], produced)
        self.assertEqual(len(seen), produced, "records in the four files vs produced")
        self.assertEqual(sink["reopens"], 3)
        counts = [lines(f) for f in files]
        print("rotation: %d records in 4 files %s, 3 reopens, none lost" % (produced, counts))

        # Append: a restart on the last file (the capture once, no endless replay) keeps its
        # lines and adds the new run's after them.
        before = read_text(log)
        p = self.start("append", ["--flow-log", log, "--idle-exit", "300"], infinite=False)
        self.assertEqual(p.wait(timeout=60), 0, read_text(self.err_path)[-3000:])
        after = read_text(log)
        self.assertTrue(after.startswith(before), "the restart kept the previous run's lines")
        added = parse_lines(after[len(before):], log + " (appended)")
        self.assertEqual(len(added), SYNS, "the second run's records (one per SYN, flushed at exit)")
        print("append: %d lines kept, %d added" % (before.count("\n"), len(added)))

    def test_2_flood_into_a_slow_fifo_never_stops_the_control_thread(self):
        fifo = os.path.join(self.work, "flows.fifo")
        os.mkfifo(fifo)
        policy = os.path.join(self.work, "policy.yaml")
        with open(policy, "w") as f:
            f.write(POLICY_A)
        port = harness.free_port()
        # The slow reader: 4 KiB every 10 ms (about 600 records a second), opened before l7gate.
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        got = []
        done = threading.Event()

        def reader():
            while True:
                try:
                    data = os.read(rfd, 4096)
                except BlockingIOError:
                    data = None
                if data:
                    got.append(data)
                elif data == b"" and done.is_set():
                    return  # l7gate exited and everything was read
                if not done.is_set():
                    time.sleep(0.01)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            p = self.start("flood", ["--flow-log", fifo, "--policy", policy, "--metrics",
                                     "127.0.0.1:%d" % port, "--flows", "65536"])
            url = "http://127.0.0.1:%d/metrics" % port
            # The flood of ended flows is on once records reach the FIFO (tcp-syn=1: a second
            # after the table filled, tens of thousands at once, far more than the reader takes).
            wait_for(lambda: got, 20, "flow records in the FIFO", proc=p)
            # /metrics answers within 1 s, several times.
            metrics_s = []
            for _ in range(3):
                t0 = time.monotonic()
                with urllib.request.urlopen(url, timeout=5) as r:
                    self.assertEqual(r.status, 200)
                    r.read()
                metrics_s.append(time.monotonic() - t0)
            # A reload is applied within 1 s.
            with open(policy + ".tmp", "w") as f:
                f.write(POLICY_B)
            os.rename(policy + ".tmp", policy)
            t0 = time.monotonic()
            p.send_signal(signal.SIGHUP)
            wait_for(lambda: "(SIGHUP): generation 2" in read_text(self.err_path), 5,
                     "the SIGHUP reload in l7gate's log", interval=0.01, proc=p)
            reload_s = time.monotonic() - t0
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = "still running 10 s after SIGTERM"
            exit_s = time.monotonic() - t0
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()  # a failure above: the FIFO's writer goes, the reader sees its end
                self.proc.wait()
            done.set()
            t.join(timeout=30)
            os.close(rfd)
        self.assertEqual(rc, 0, read_text(self.err_path)[-3000:])
        text = b"".join(got).decode(errors="replace")
        complete = text[:text.rfind("\n") + 1]  # a line cut by the exit bound is counted lost
        written = len(parse_lines(complete, fifo))
        st = self.stats("flood")
        fl = st["flow_log"]
        sink = fl["sinks"]["flow_log"]
        produced = fl["records"] + fl["lost"]
        lost = sum(sink["lost"].values())
        harness.figure("livelock: reload applied after", "%.3f s" % reload_s)
        harness.figure("livelock: /metrics answered in", "max %.3f s of %d scrapes" % (max(metrics_s), len(metrics_s)))
        harness.figure("livelock: exit after SIGTERM", "%.3f s" % exit_s)
        harness.figure("livelock: flow records", "produced %d = written %d + lost %d %s"
                       % (produced, written, lost, json.dumps(sink["lost"])))
        self.assertLess(reload_s, 1.0)
        self.assertLess(max(metrics_s), 1.0)
        self.assertLess(exit_s, 2.0)
        self.assertEqual(sink["written"], written, "lines read from the FIFO vs written")
        self.assertEqual(written + lost, produced)
        self.assertGreater(sink["lost"]["sink_full"], 0, "the slow reader made the sink refuse")
        self.assertGreater(written, 0)


if __name__ == "__main__":
    harness.main()
