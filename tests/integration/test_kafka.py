#!/usr/bin/python3
"""Integration tests: the Kafka sink (--kafka, issue 21) against librdkafka's mock cluster.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools L7GATE_KAFKA_MOCK=build/tests/kafka_mock \\
        /usr/bin/python3 tests/integration/test_kafka.py -v

The broker is tests/kafka/kafka_mock (librdkafka's in-process mock cluster on 127.0.0.1, topics
of one partition, so a consumer reads messages in the order l7gate produced them); the consumer
is kcat (-C -e -o beginning).

- Same records: the generated l7 traffic once under a policy with hosts.auto_block, with
  --flow-log and --kafka --kafka-events-topic: what kcat reads from the flow topic is,
  byte for byte and line for line, the flow log's record lines; from the events topic, its
  host event lines.
- Broker away: a SYN flood replayed endlessly (a few thousand flow records a second) with
  --kafka and --flow-log; the broker goes down, then up again. While it is down l7gate forwards
  at the rate it had before, /metrics answers, the control thread spends no more time in the
  record service than before (l7gate_control_service_seconds_total: a sink that waited on the
  broker would show there; the workers forward whatever the control thread does), and the Kafka
  sink counts records it could not deliver (queue full, timed out); once it is back, records
  produced after the recovery arrive.
  At exit every record kcat reads is a flow-log line, none twice, their number is the sink's
  acked count, and acked + lost by cause = produced.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import hostile  # noqa: E402
from harness import BIN, lcores_arg, read_text, require_binary, run_l7gate, wait_for, write_pcap  # noqa: E402

MOCK = os.environ.get("L7GATE_KAFKA_MOCK", "")
KCAT = shutil.which("kcat") or shutil.which("kafkacat")

POLICY = """version: 1
default_policy: lan
hosts: {auto_block: {score: 200, window: 60s, block_for: 2s}}
policies:
  lan: {default: pass}
"""
SYNS = 2000


class Broker:
    """tests/kafka/kafka_mock as a subprocess: bootstrap address, down/up commands."""

    def __init__(self, *topics):
        self.p = subprocess.Popen([MOCK] + list(topics), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.bootstrap = self.p.stdout.readline().strip()
        if not re.match(r"^[\w.]+:\d+(,[\w.]+:\d+)*$", self.bootstrap):
            raise AssertionError("kafka_mock printed no bootstrap address: %r" % self.bootstrap)

    def command(self, c):
        self.p.stdin.write(c + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            raise AssertionError("kafka_mock %s: %r" % (c, answer))

    def stop(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def consume(bootstrap, topic):
    """Every message of the topic, from the beginning, as kcat prints them (one a line)."""
    p = subprocess.run([KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-X", "topic.metadata.refresh.interval.ms=500"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("kcat failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    return p.stdout


def sink(st, name):
    return st["flow_log"]["sinks"][name]


class KafkaTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if not MOCK or not os.access(MOCK, os.X_OK):
            self.skipTest("L7GATE_KAFKA_MOCK does not name tests/kafka/kafka_mock (built with librdkafka)")
        if KCAT is None:
            self.skipTest("no kcat (apt-get install kcat)")
        self.work = tempfile.mkdtemp(prefix="l7gate-kafka-")
        self.broker = None
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.broker is not None:
            self.broker.stop()
        harness.remove_work(self.work)

    def test_1_every_record_arrives_as_in_the_flow_log(self):
        harness.generate(self, self.work)
        self.broker = Broker("flows", "events")
        policy = os.path.join(self.work, "policy.yaml")
        with open(policy, "w") as f:
            f.write(POLICY)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        log = os.path.join(self.work, "flows.jsonl")
        run = run_l7gate(self.work, "l7", [[os.path.join(self.work, "l7.pcap")], [empty]],
                         ["--flow-log", log, "--policy", policy, "--kafka", self.broker.bootstrap,
                          "--kafka-topic", "flows", "--kafka-events-topic", "events"])
        self.assertEqual(run.rc, 0, run.describe())
        lines = read_text(log).splitlines(keepends=True)
        records = "".join(ln for ln in lines if not ln.startswith('{"event":'))
        events = "".join(ln for ln in lines if ln.startswith('{"event":'))
        got = consume(self.broker.bootstrap, "flows")
        got_events = consume(self.broker.bootstrap, "events")
        n = records.count("\n")
        self.assertGreater(n, 10, "flow records in the log")
        self.assertIn('"event":"host_blocked"', events, "the policy's auto-block produced events")
        k = sink(run.stats, "kafka")
        self.assertEqual((k["written"], k["lost"], k["queued"]),
                         (n, {"ring_full": 0, "sink_full": 0, "write_error": 0, "shutdown": 0}, 0), k)
        self.assertEqual(k["events_written"], events.count("\n"), k)
        # Byte for byte, in order: a message is the flow log's line without its newline (kcat
        # adds one back).
        self.assertEqual(got.count("\n"), n, "records consumed vs logged")
        self.assertEqual(got, records, "the flow topic vs the flow log's records")
        self.assertEqual(got_events, events, "the events topic vs the flow log's events")
        harness.figure("kafka: records / events consumed, byte-identical to the flow log",
                       "%d / %d" % (n, events.count("\n")))
        # One flow as both show it (a TLS one when there is: the most fields filled).
        i = next((i for i, ln in enumerate(records.splitlines()) if json.loads(ln)["ja3c"]), 0)
        print("one flow, flow log: %s" % records.splitlines()[i])
        print("one flow, kcat:     %s" % got.splitlines()[i])

    def syn_capture(self, path):
        rng = random.Random(21)
        frames, seen = [], set()
        while len(frames) < SYNS:
            fr = hostile.syn(rng)
            if fr[26:38] not in seen:
                seen.add(fr[26:38])
                frames.append(fr)
        write_pcap(path, frames)

    def test_2_broker_away_never_slows_forwarding_and_delivery_resumes(self):
        # Partitions: the mock broker keeps only the last few MB of each one.
        self.broker = Broker("flows:16")
        syns = os.path.join(self.work, "syns.pcap")
        self.syn_capture(syns)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        log = os.path.join(self.work, "flows.jsonl")
        port = harness.free_port()
        prefix = "l7gkafka%d" % os.getpid()
        stats_path = os.path.join(self.work, "stats.json")
        err_path = os.path.join(self.work, "l7gate.err")
        out_path = os.path.join(self.work, "l7gate.out")
        cmd = [BIN, "--no-huge", "--no-pci", "-m", "1024", lcores_arg(2), "--log-level=*:warning",
               "--file-prefix", prefix,
               "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % syns,
               "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % empty,
               "--", "--timeouts", "tcp-syn=1", "--flows", "4096", "--bench-fresh-flows", str(SYNS),
               "--bench-fresh-syns", "--stats-json", stats_path, "--metrics", "127.0.0.1:%d" % port,
               "--flow-log", log, "--kafka", self.broker.bootstrap, "--kafka-topic", "flows",
               # A small queue (above the 4096 records a table's worth of SYNs ends at once) and
               # a short delivery timeout: the outage shows in a second or two.
               "--kafka-config", "queue.buffering.max.messages=5000,message.timeout.ms=1000"]
        with open(out_path, "w") as out, open(err_path, "w") as err:
            self.proc = p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        harness.note_l7gate("kafka-outage", path=err_path)
        url = "http://127.0.0.1:%d/metrics" % port

        def scrape():
            t0 = time.monotonic()
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            m = {}
            for ln in text.splitlines():
                if ln and not ln.startswith("#"):
                    name, _, value = ln.rpartition(" ")
                    m[name] = float(value)
            return m, time.monotonic() - t0

        def metric(m, name, **labels):
            total = 0.0
            for k, v in m.items():
                if k == name or k.startswith(name + "{"):
                    if all('%s="%s"' % kv in k for kv in labels.items()):
                        total += v
            return total

        def kafka_lost(m):
            return sum(metric(m, "l7gate_flow_records_lost_total", sink="kafka", cause=c)
                       for c in ("sink_full", "write_error"))

        def rate(seconds=1.5):
            """Packets forwarded per second, and the share of that time the control thread spent
            in the record service (where the Kafka sink runs)."""
            m0, _ = scrape()
            t0 = time.monotonic()
            time.sleep(seconds)
            m1, dt = scrape()
            el = time.monotonic() - t0
            svc = "l7gate_control_service_seconds_total"
            busy = (metric(m1, svc, service="flow_records") - metric(m0, svc, service="flow_records")) / el
            return (metric(m1, "l7gate_tx_packets_total") - metric(m0, "l7gate_tx_packets_total")) / el, m1, dt, busy

        wait_for(lambda: metric(scrape()[0], "l7gate_flow_records_written_total", sink="kafka") > 1000, 30,
                 "records acked by the broker", proc=p)
        up_rate, m, _, up_busy = rate()
        self.assertEqual(kafka_lost(m), 0, "nothing lost while the broker is up")
        self.broker.command("down")
        wait_for(lambda: kafka_lost(scrape()[0]) > 0, 20, "Kafka records counted lost while the broker is down",
                 proc=p)
        down_rate, m, scrape_s, down_busy = rate()
        lost_down = kafka_lost(m)
        self.broker.command("up")
        t_up = time.time()
        acked_at_up = metric(scrape()[0], "l7gate_flow_records_written_total", sink="kafka")
        wait_for(lambda: metric(scrape()[0], "l7gate_flow_records_written_total", sink="kafka") > acked_at_up + 2000,
                 30, "delivery resuming after the broker came back", proc=p)
        time.sleep(1.5)  # records that ended after the recovery
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0, read_text(err_path)[-3000:])
        with open(stats_path) as f:
            st = json.load(f)
        fl = st["flow_log"]
        produced = fl["records"] + fl["lost"]
        k = sink(st, "kafka")
        logged = read_text(log).splitlines()
        got = consume(self.broker.bootstrap, "flows").splitlines()
        harness.figure("kafka outage: forwarding rate up / down", "%.0f / %.0f packets/s (%.2f)"
                       % (up_rate, down_rate, down_rate / max(up_rate, 1)))
        harness.figure("kafka outage: records", "produced %d, acked %d, lost %s, consumed %d"
                       % (produced, k["written"], json.dumps(k["lost"]), len(got)))
        harness.figure("kafka outage: control thread in the record service, up / down", "%.1f%% / %.1f%%"
                       % (100 * up_busy, 100 * down_busy))
        # Forwarding at full rate, the control thread not waiting on Kafka, loss counted.
        self.assertGreater(down_rate, 0.6 * up_rate, "forwarding while the broker is down vs up")
        self.assertLess(scrape_s, 1.0, "/metrics while the broker is down")
        self.assertLess(down_busy, 0.3, "share of time the control thread spent in the record service "
                        "while the broker was down (waiting on it?)")
        self.assertGreater(lost_down, 0)
        self.assertEqual(sink(st, "flow_log")["written"], produced, "the flow log lost nothing")
        self.assertEqual(k["written"] + sum(k["lost"].values()) + k["queued"], produced, k)
        # What arrived is what was acked, each record once, byte for byte a flow-log line.
        self.assertEqual(len(got), k["written"])
        self.assertEqual(len(set(got)), len(got), "a record consumed twice")
        missing = set(got) - set(logged)
        self.assertFalse(missing, "consumed records not in the flow log: %s" % list(missing)[:2])
        after = [ln for ln in got if json.loads(ln)["ts_first"] > t_up]
        self.assertGreater(len(after), 1000, "records of flows that began after the broker came back")


if __name__ == "__main__":
    harness.main()
