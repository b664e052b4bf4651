#!/usr/bin/python3
"""Integration tests: the real l7gate binary bridging two net_pcap vdevs.

Run by meson (`meson test -C build bridge -v`) or directly:

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_bridge.py -v

Traffic comes from tools/gen_traffic.py; every expectation (frame lists, flow counts, the
reason of each malformed frame) comes from the generator's *-expect.json files or from the
input pcaps themselves, never from l7gate's own output. Set L7GATE_KEEP_TMP=1 to keep the
work directory (its path is printed).
"""

import json
import os
import re
import sys
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("L7GATE_BIN", "")
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")
SRC_ROOT = os.path.join(TOOLS, "..")
sys.path.insert(0, HERE)

# Fallback when src/dataplane/drop_reason.hpp is not next to the tools directory.
DEFAULT_REASONS = [
    ("l2_truncated", True), ("vlan_too_deep", True), ("ipv4_truncated", True),
    ("ipv4_bad_version", True), ("ipv4_bad_ihl", True), ("ipv4_bad_length", True),
    ("ipv4_bad_fragment", True), ("ipv6_truncated", True), ("ipv6_bad_version", True),
    ("ipv6_bad_length", True), ("ipv6_ext_truncated", True), ("ipv6_ext_too_long", True),
    ("tcp_truncated", True), ("tcp_bad_offset", True), ("udp_truncated", True),
    ("udp_bad_length", True), ("icmp_truncated", True), ("frag_no_first", True),
    ("policy", False), ("shaper_overflow", False), ("shaper_delay", False), ("police", False),
    ("shaper_flush", False), ("shaper_backlog", False), ("shaper_hosts", False), ("table_full", False), ("bucket_full", False), ("tx_full", False),
    ("no_mbuf", False),
]


def load_reasons():
    path = os.path.join(SRC_ROOT, "src", "dataplane", "drop_reason.hpp")
    try:
        with open(path) as f:
            found = re.findall(r'X\(\w+,\s*"(\w+)",\s*(true|false)', f.read())
    except OSError:
        found = []
    if not found:
        return DEFAULT_REASONS
    return [(name, flag == "true") for name, flag in found]


REASONS = load_reasons()
ALL_REASONS = [r for r, _ in REASONS]
MALFORMED_REASONS = [r for r, m in REASONS if m]

from harness import (read_pcap, write_pcap, ethertype, run_l7gate,  # noqa: E402
                     l7gate_stderr_lines, generate_module_traffic, remove_work,
                     check_generated, check_binary)
import harness  # noqa: E402

WORK = None
GEN_ERROR = None


def setUpModule():
    global WORK, GEN_ERROR
    WORK, GEN_ERROR = generate_module_traffic("l7gate-it-", "l7gate integration")


def tearDownModule():
    remove_work(WORK, quiet=True)


class L7gateTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        check_generated(self, GEN_ERROR)
        check_binary(self)
        self.work = tempfile.mkdtemp(prefix=self._testMethodName + "-", dir=WORK)

    # -- helpers ------------------------------------------------------------------------------

    def gen(self, name):
        return os.path.join(WORK, "gen", name)

    def expect(self, name):
        with open(self.gen(name)) as f:
            return json.load(f)

    def run_ok(self, name, rx, args, **kw):
        r = run_l7gate(self.work, name, rx, args, **kw)
        self.assertEqual(r.rc, 0, "l7gate did not exit 0\n" + r.describe())
        self.assertIsNotNone(r.stats, "no stats JSON written\n" + r.describe())
        self.assertNotIn("__invalid_json__", r.stats, "stats JSON does not parse\n" + r.describe())
        return r

    def assertFramesEqual(self, got, want, what):
        """Exact frame list comparison with a readable first difference."""
        if got == want:
            return
        msg = "%s: %d frames out, %d expected" % (what, len(got), len(want))
        for i in range(min(len(got), len(want))):
            if got[i] != want[i]:
                msg += "; first difference at frame %d:\n  got  %s\n  want %s" % (
                    i, got[i][:64].hex(), want[i][:64].hex())
                break
        else:
            extra = got[len(want):] or want[len(got):]
            msg += "; first extra/missing frame: %s" % (extra[0][:64].hex() if extra else "?")
        self.fail(msg)

    def port(self, stats, pid):
        ports = [p for p in stats.get("ports", []) if p.get("port") == pid]
        self.assertEqual(len(ports), 1, "port %d not (exactly once) in stats.ports: %r"
                         % (pid, stats.get("ports")))
        return ports[0]

    def check_schema(self, st):
        for k in ("ports", "drops", "malformed", "non_ip_packets", "flows", "fragments",
                  "workers", "totals"):
            self.assertIn(k, st, "stats JSON lacks %r" % k)
        self.assertEqual(sorted(st["drops"]), sorted(ALL_REASONS),
                         "drops must list every reason exactly")
        self.assertEqual(sorted(st["malformed"]), sorted(MALFORMED_REASONS),
                         "malformed must list every malformed reason exactly")
        for k in ("created", "expired", "active", "table_full"):
            self.assertIn(k, st["flows"])
        for k in ("tracked", "matched", "table_full"):
            self.assertIn(k, st["fragments"])
        for k in ("rx_packets", "tx_packets", "dropped"):
            self.assertIn(k, st["totals"])

    def check_accounting(self, st, nworkers=1):
        """rx == tx + dropped, and totals agree with ports, queues, drops and workers."""
        t = st["totals"]
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"],
                         "accounting identity rx == tx + dropped: %r" % t)
        self.assertEqual(t["dropped"], sum(st["drops"].values()),
                         "totals.dropped != sum of drops: %r" % st["drops"])
        self.assertEqual(t["rx_packets"], sum(p["rx_packets"] for p in st["ports"]))
        self.assertEqual(t["tx_packets"], sum(p["tx_packets"] for p in st["ports"]))
        for p in st["ports"]:
            qs = p.get("queues", [])
            self.assertEqual(len(qs), nworkers, "port %d queues: %r" % (p["port"], qs))
            for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
                self.assertEqual(p[k], sum(q[k] for q in qs),
                                 "port %d %s != sum over its queues" % (p["port"], k))
        self.assertEqual(len(st["workers"]), nworkers, "workers: %r" % st["workers"])
        self.assertEqual(t["rx_packets"], sum(w["rx_packets"] for w in st["workers"]),
                         "totals.rx_packets != sum of workers' rx_packets")

    def check_port(self, st, pid, rx_frames, tx_frames):
        p = self.port(st, pid)
        self.assertEqual(p["rx_packets"], len(rx_frames), "port %d rx_packets" % pid)
        self.assertEqual(p["rx_bytes"], sum(map(len, rx_frames)), "port %d rx_bytes" % pid)
        self.assertEqual(p["tx_packets"], len(tx_frames), "port %d tx_packets" % pid)
        self.assertEqual(p["tx_bytes"], sum(map(len, tx_frames)), "port %d tx_bytes" % pid)

    def assertNoDrops(self, st):
        self.assertEqual({k: v for k, v in st["drops"].items() if v}, {}, "unexpected drops")
        self.assertEqual(st["totals"]["dropped"], 0)

    # -- 1. bridge forwarding -----------------------------------------------------------------

    def test_1_bridge_forwarding(self):
        exp = self.expect("bridge-expect.json")
        in0, in1 = read_pcap(self.gen("bridge-p0.pcap")), read_pcap(self.gen("bridge-p1.pcap"))
        e0, e1 = exp["files"]["bridge-p0.pcap"], exp["files"]["bridge-p1.pcap"]
        self.assertEqual((len(in0), len(in1)), (e0["frames"], e1["frames"]), "generator self-check")

        r = self.run_ok("bridge", [[self.gen("bridge-p0.pcap")], [self.gen("bridge-p1.pcap")]], [])
        out0, out1 = read_pcap(r.outs[0][0]), read_pcap(r.outs[1][0])
        self.assertFramesEqual(out1, in0, "port 1 output vs port 0 input")
        self.assertFramesEqual(out0, in1, "port 0 output vs port 1 input")
        self.assertEqual(sum(ethertype(f) == 0x0806 for f in out0 + out1), e0["arp"] + e1["arp"],
                         "ARP frames in the output")

        st = r.stats
        self.check_schema(st)
        self.check_port(st, 0, in0, in1)
        self.check_port(st, 1, in1, in0)
        self.assertEqual(st["totals"]["rx_packets"], len(in0) + len(in1))
        self.assertEqual(st["totals"]["tx_packets"], len(in0) + len(in1))
        self.assertNoDrops(st)
        self.check_accounting(st)
        self.assertEqual({k: v for k, v in st["malformed"].items() if v}, {}, "malformed counts")
        self.assertEqual(st["non_ip_packets"], e0["non_ip"] + e1["non_ip"], "ARP + LLDP frames")
        self.assertEqual(st["flows"]["created"], exp["total_flows"], "distinct flows")
        self.assertEqual(st["flows"]["table_full"], 0)
        self.assertLessEqual(st["flows"]["active"], st["flows"]["created"])
        nonfirst = e0["non_first_fragments"] + e1["non_first_fragments"]
        first = e0["fragments"] + e1["fragments"] - nonfirst
        self.assertEqual(st["fragments"]["matched"], nonfirst, "non-first fragments matched")
        self.assertEqual(st["fragments"]["tracked"], first, "fragmented datagrams tracked")
        self.assertEqual(st["fragments"]["table_full"], 0)

    # -- 2. malformed -------------------------------------------------------------------------

    def _malformed_run(self, name, args):
        exp = self.expect("malformed-expect.json")
        frames = read_pcap(self.gen("malformed-p0.pcap"))
        self.assertEqual(len(frames), len(exp["frames"]), "generator self-check")
        r = self.run_ok(name, [[self.gen("malformed-p0.pcap")], [os.path.join(WORK, "empty.pcap")]],
                        args)
        st = r.stats
        self.check_schema(st)
        want_mal = {k: exp["counts"].get(k, 0) for k in MALFORMED_REASONS}
        self.assertEqual(set(exp["counts"]) - set(MALFORMED_REASONS), set(),
                         "expect file names unknown reasons")
        self.assertEqual(st["malformed"], want_mal, "malformed counts per reason")
        self.assertEqual(st["non_ip_packets"], exp["non_ip"])
        self.assertEqual(read_pcap(r.outs[0][0]), [], "nothing may come out of port 0")
        self.check_accounting(st)
        return exp, frames, r, st

    def _check_malformed_dropped(self, name, args):
        exp, frames, r, st = self._malformed_run(name, args)
        valid = [frames[i] for i in exp["valid_indices"]]
        self.assertFramesEqual(read_pcap(r.outs[1][0]), valid, "port 1 output vs valid input frames")
        want_drops = {k: exp["counts"].get(k, 0) for k in ALL_REASONS}
        self.assertEqual(st["drops"], want_drops, "drops per reason")
        self.assertEqual(st["totals"]["dropped"], exp["malformed_total"])
        self.assertEqual(st["flows"]["created"], exp["valid_flows"], "flows of the valid frames")
        self.check_port(st, 0, frames, [])
        self.check_port(st, 1, [], valid)

    def test_2a_malformed_default_drop(self):
        self._check_malformed_dropped("malformed-default", [])

    def test_2b_malformed_explicit_drop(self):
        self._check_malformed_dropped("malformed-drop", ["--malformed", "drop"])

    def test_2c_malformed_pass(self):
        exp, frames, r, st = self._malformed_run("malformed-pass", ["--malformed", "pass"])
        self.assertFramesEqual(read_pcap(r.outs[1][0]), frames, "port 1 output vs all input frames")
        self.assertNoDrops(st)
        self.check_port(st, 0, frames, [])
        self.check_port(st, 1, [], frames)

    # -- 3. flow table full -------------------------------------------------------------------

    def _flows_run(self, name, mode):
        exp = self.expect("flows-expect.json")
        frames = read_pcap(self.gen("flows-p0.pcap"))
        self.assertEqual((len(frames), exp["flows"]), (2000, 2000), "generator self-check")
        r = self.run_ok(name, [[self.gen("flows-p0.pcap")], [os.path.join(WORK, "empty.pcap")]],
                        ["--flows", "1000", "--on-flow-table-full", mode])
        st = r.stats
        self.check_schema(st)
        self.check_accounting(st)
        fl = st["flows"]
        self.assertEqual(fl["created"], 1000, "flows.created == capacity: %r" % fl)
        self.assertEqual(fl["created"] + fl["table_full"], exp["flows"], "created + table_full: %r" % fl)
        return frames, r, st

    def test_3a_table_full_pass(self):
        frames, r, st = self._flows_run("flows-pass", "pass")
        self.assertFramesEqual(read_pcap(r.outs[1][0]), frames, "all 2000 flows forwarded")
        self.assertGreater(st["flows"]["table_full"], 0)
        self.assertNoDrops(st)
        self.check_port(st, 0, frames, [])
        self.check_port(st, 1, [], frames)

    def test_3b_table_full_drop(self):
        frames, r, st = self._flows_run("flows-drop", "drop")
        self.assertEqual(st["drops"]["table_full"], st["flows"]["table_full"])
        self.assertEqual(st["drops"]["table_full"], 1000)
        self.assertEqual({k: v for k, v in st["drops"].items() if v and k != "table_full"}, {})
        p0, p1 = self.port(st, 0), self.port(st, 1)
        self.assertEqual(p0["rx_packets"], 2000)
        self.assertEqual(p1["tx_packets"], p0["rx_packets"] - st["drops"]["table_full"])
        # One worker, flows in order, nothing expires: the first 1000 flows got the entries.
        self.assertFramesEqual(read_pcap(r.outs[1][0]), frames[:1000], "forwarded = first 1000 flows")

    # -- 4. bad arguments ---------------------------------------------------------------------

    def test_4_bad_arguments(self):
        cases = [
            ["--pairs", "0:0"],
            ["--pairs", "0:5"],
            ["--rxq", "4"],
            ["--flows", "abc"],
            ["--bogus"],
        ]
        for args in cases:
            with self.subTest(args=" ".join(args)):
                name = "badarg-" + re.sub(r"\W+", "_", "".join(args)).strip("_")
                r = run_l7gate(self.work, name,
                               [[self.gen("bridge-p0.pcap")], [self.gen("bridge-p1.pcap")]], args,
                               log_level="*:error", stats=True)
                self.assertEqual(r.rc, 2, "exit code\n" + r.describe())
                lines = l7gate_stderr_lines(r.stderr)
                self.assertEqual(len(lines), 1, "want exactly one stderr line from l7gate, got %r\n%s"
                                 % (lines, r.describe()))
                for port in (0, 1):
                    self.assertEqual(len(read_pcap(r.outs[port][0])), 0,
                                     "port %d transmitted frames despite bad arguments" % port)

    # -- 5. help ------------------------------------------------------------------------------

    def test_5_help(self):
        empty = os.path.join(WORK, "empty.pcap")
        r = run_l7gate(self.work, "help", [[empty], [empty]], ["-h"], stats=False, idle_exit=False)
        self.assertEqual(r.rc, 0, "-h exit code\n" + r.describe())
        text = r.stdout + r.stderr
        missing = [o for o in ("--pairs", "--rxq", "--rss", "--flows", "--frags", "--timeouts",
                               "--on-flow-table-full", "--malformed", "--mbufs", "--duration",
                               "--idle-exit", "--stats-interval", "--stats-json", "-h", "--help")
                   if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), text)]
        self.assertEqual(missing, [], "options missing from the usage text:\n" + text)
        for word in ("symmetric", "driver", "tcp-syn", "tcp-closed", "frag"):
            self.assertIn(word, text, "usage text lacks %r" % word)

    # -- 6. two workers -----------------------------------------------------------------------

    def test_6_two_workers(self):
        exp = self.expect("bridge-expect.json")
        flows = exp["flows"]
        split = {}  # port -> queue -> frames
        for port in (0, 1):
            name = "bridge-p%d.pcap" % port
            frames = read_pcap(self.gen(name))
            qs = [[], []]
            for fr, fid in zip(frames, exp["files"][name]["frame_flows"]):
                # Same canonical flow => same queue on both ports; non-IP frames go to queue 0.
                q = 0 if fid is None else zlib.crc32(flows[fid].encode()) % 2
                qs[q].append(fr)
            split[port] = qs
        rx = []
        for port in (0, 1):
            files = []
            for q in (0, 1):
                path = os.path.join(self.work, "in%d-q%d.pcap" % (port, q))
                write_pcap(path, split[port][q])
                self.assertGreater(len(split[port][q]), 0, "test setup: empty queue file")
                files.append(path)
            rx.append(files)

        r = self.run_ok("workers2", rx, ["--rxq", "2", "--rss", "driver"], workers=2)
        for q in (0, 1):
            self.assertFramesEqual(read_pcap(r.outs[1][q]), split[0][q],
                                   "port 1 queue %d output vs port 0 queue %d input" % (q, q))
            self.assertFramesEqual(read_pcap(r.outs[0][q]), split[1][q],
                                   "port 0 queue %d output vs port 1 queue %d input" % (q, q))
        st = r.stats
        self.check_schema(st)
        self.check_accounting(st, nworkers=2)
        self.assertNoDrops(st)
        ws = sorted(st["workers"], key=lambda w: w.get("queue", -1))
        self.assertEqual([w.get("queue") for w in ws], [0, 1], "one worker per queue: %r" % ws)
        self.assertEqual(len({w.get("lcore") for w in ws}), 2, "workers on distinct lcores: %r" % ws)
        for q, w in enumerate(ws):
            self.assertGreater(w["rx_packets"], 0)
            self.assertEqual(w["rx_packets"], len(split[0][q]) + len(split[1][q]),
                             "worker of queue %d rx_packets" % q)
        for port in (0, 1):
            p = self.port(st, port)
            byq = {qq.get("queue"): qq for qq in p["queues"]}
            for q in (0, 1):
                self.assertIn(q, byq, "port %d queue %d stats" % (port, q))
                self.assertEqual(byq[q]["rx_packets"], len(split[port][q]),
                                 "port %d queue %d rx_packets" % (port, q))
                self.assertEqual(byq[q]["tx_packets"], len(split[1 - port][q]),
                                 "port %d queue %d tx_packets" % (port, q))
        self.assertEqual(st["flows"]["created"], exp["total_flows"], "distinct flows over 2 workers")
        self.assertEqual(st["non_ip_packets"],
                         sum(exp["files"][n]["non_ip"] for n in exp["files"]))


if __name__ == "__main__":
    harness.main()
