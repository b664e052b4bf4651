#!/usr/bin/python3
"""Integration tests: hostile traffic against the real binary.

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_robustness.py -v

- A SYN flood (random half-open flows) mixed into the generated l7 traffic, with a small nDPI
  state pool: the half-open flows must not starve the legitimate flows of classification
  (the oldest half-open flows give their state up), every frame is accounted for.
- Flow-table flood: SYNs at 20x the table's capacity while established flows keep talking;
  the table fills, `--on-flow-table-full drop` is applied and counted exactly, established
  flows keep their verdicts and every one of their frames passes, peak RSS stays within a
  bound of a run without the flood, and expiry makes room for new flows after the flood.
- Classification-state exhaustion: more UDP flows in classification than the nDPI state
  pool holds: the overflow is counted (dpi_pool_full), forwarded unclassified, nothing is
  allocated outside the arena.
- Fragment attacks: tiny first fragments hiding the TCP header, overlapping fragments of a
  passed and of a dropped flow, a fragment flood beyond the fragment table, IPv6
  extension-header chains beyond the parser's limit; each counted under its reason.
- Malformed L7: a truncated TLS record, 64 KB of HTTP headers, DNS compression loops.
- Injection abuse: a SYN flood of rejected flows; the RSTs sent stay within --reject-rate.
- Mbuf pressure: a shaper holding every mbuf of a small pool; the PMD counts what it could
  not receive, nothing crashes, and every mbuf is back in the pool at exit (no leak).

Each test prints its figures ("robustness: ..."); README's security table quotes them.
"""

import json
import os
import random
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (read_pcap_records, write_pcap, run_l7gate, require_binary,  # noqa: E402
                     generated_work, load_l7_expect, remove_work)
import harness  # noqa: E402
import hostile  # noqa: E402
from hostile import TcpConv, ipv4, tcp, write_timed_pcap, SYN, ACK, PSH  # noqa: E402


def syn_frame(rng):
    """An Ethernet/IPv4/TCP SYN from a random 198.18.200.0/21 host and port to 198.19.0.0/16."""
    src = bytes([198, 18, 200 + rng.randrange(8), rng.randrange(256)])
    dst = bytes([198, 19, rng.randrange(256), rng.randrange(1, 255)])
    tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), 443, rng.randrange(1 << 32), 0,
                      5 << 4, 0x02, 64240, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.randrange(65536), 0, 64, 6, 0, src, dst)
    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
    return eth + ip + tcp


class SynFloodTest(unittest.TestCase):
    def setUp(self):
        self.work = generated_work(self, "l7gate-robust-")
        self.expect = load_l7_expect(self.work)

    def tearDown(self):
        remove_work(self.work)

    def test_syn_flood_does_not_starve_classification(self):
        cls, n = self.flood([])
        self.assertEqual(cls["dpi_reclaimed"], 0, cls)
        self.assertGreaterEqual(cls["deferred_no_payload"], n, cls)  # every flood flow
        self.assertLessEqual(cls["ndpi_packets"], len(self.expect) * 40, cls)  # never a flood SYN

    def test_syn_flood_fed_from_the_syn_reclaims_states(self):
        # With custom protocols loaded every flow is fed from its first packet (a custom port
        # rule decides on the SYN): the flood's half-open flows then hold nDPI states and the
        # oldest give theirs up to new flows (dpi_reclaimed).
        protos = os.path.join(self.work, "protos.txt")
        with open(protos, "w") as f:
            f.write("tcp:9999@RobustTest\n")
        cls, n = self.flood(["--ndpi-protos", protos])
        self.assertEqual(cls["deferred"], 0, cls)
        self.assertGreater(cls["dpi_reclaimed"], 3000 - 512, cls)

    def flood(self, extra):
        """Replays the flood with l7 mixed in; checks forwarding and l7's classification.
        Returns (classification stats, number of flood SYNs)."""
        rng = random.Random(1)
        l7 = [fr for _, fr in read_pcap_records(os.path.join(self.work, "l7.pcap"))]
        # 3,000 half-open flows (6 times the 512-state pool) before l7 starts, and 5 SYNs
        # follow every legitimate frame. A bare SYN takes no nDPI state (it waits for payload),
        # so the flood never touches the pool: nothing to reclaim, nothing left unclassified.
        frames = [syn_frame(rng) for _ in range(3000)]
        for fr in l7:
            frames.append(fr)
            frames += [syn_frame(rng) for _ in range(5)]
        mixed = os.path.join(self.work, "mixed.pcap")
        write_pcap(mixed, frames)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        flows = os.path.join(self.work, "flows.jsonl")
        r = run_l7gate(self.work, "flood", [[mixed], [empty]],
                       ["--dpi-flows", "512", "--flows", "16384", "--flow-log", flows] + extra)
        self.assertEqual(r.rc, 0, r.describe())
        st = r.stats
        self.assertEqual(st["totals"]["rx_packets"], len(frames))
        self.assertEqual(st["totals"]["tx_packets"], len(frames), "nothing may be dropped")
        cls = st["classification"]
        self.assertEqual(cls["dpi_pool_full"], 0, cls)
        with open(flows) as f:
            log = {(x["src_ip"], x["src_port"], x["dst_ip"], x["dst_port"]): x for x in map(json.loads, f)}
        for e in self.expect:
            got = log.get((e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"]))
            self.assertIsNotNone(got, e["name"])
            self.assertEqual(got["l7_proto"], e["l7_proto"], e["name"])
        print("flood%s: %d frames, %d flows, %d half-open flows given up without an nDPI state, "
              "%d nDPI states reclaimed" % (" ".join([""] + extra[:1]), len(frames), st["flows"]["created"],
                                            cls["deferred_no_payload"], cls["dpi_reclaimed"]))
        return cls, 3000 + 5 * len(l7)


def report(line):
    print("robustness: " + line)
    sys.stdout.flush()


def flow_frames(frames):
    """Frames grouped by canonical 5-tuple (harness.frame_flow_key)."""
    out = {}
    for fr in frames:
        out.setdefault(harness.frame_flow_key(fr), []).append(fr)
    return out


class HostileBase(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        self.work = tempfile.mkdtemp(prefix="l7gate-hostile-")
        self.empty = os.path.join(self.work, "empty.pcap")
        write_pcap(self.empty, [])

    def tearDown(self):
        remove_work(self.work)

    def policy(self, text):
        p = os.path.join(self.work, "policy.yaml")
        with open(p, "w") as f:
            f.write(text)
        return p

    def run_records(self, name, records, args, rss=False, all_received=True):
        """Runs l7gate on port 0 = records [(t_us, frame)] with the capture clock. With rss,
        l7gate runs under a wrapper that reports its peak RSS (KiB) in r.peak_rss_kib."""
        path = os.path.join(self.work, name + ".pcap")
        write_timed_pcap(path, records)
        saved = harness.BIN
        rss_file = os.path.join(self.work, name + ".rss")
        if rss:
            # l7gate runs under a wrapper that writes its peak RSS (KiB) to $L7G_RSS_FILE.
            wrapper = os.path.join(self.work, "rss-wrapper")
            with open(wrapper, "w") as f:
                f.write("#!/usr/bin/python3\nimport os, resource, subprocess, sys\n"
                        "rc = subprocess.call([%r] + sys.argv[1:])\n"
                        "open(os.environ['L7G_RSS_FILE'], 'w').write("
                        "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                        "sys.exit(rc)\n" % saved)
            os.chmod(wrapper, 0o755)
            harness.BIN = wrapper
            os.environ["L7G_RSS_FILE"] = rss_file
        try:
            r = run_l7gate(self.work, name, [[path], [self.empty]], ["--clock", "capture"] + args)
        finally:
            harness.BIN = saved
            os.environ.pop("L7G_RSS_FILE", None)
        self.assertEqual(r.rc, 0, r.describe())
        st = r.stats
        if all_received:
            self.assertEqual(st["totals"]["rx_packets"], len(records), "every frame received")
        self.assertEqual(st["totals"]["rx_packets"], st["totals"]["tx_packets"] + st["totals"]["dropped"])
        for mp in st.get("mempools", []):
            self.assertEqual(mp["in_use"], 0, "mbufs not back in the pool at exit: %r" % mp)
        if rss:
            with open(rss_file) as f:
                r.peak_rss_kib = int(f.read())
        return r

    def nonzero(self, d):
        return {k: v for k, v in d.items() if v}


class FlowTableFloodTest(HostileBase):
    CAP = 1000
    FLOOD = 20 * CAP

    def build(self, flood):
        """40 established conversations (10 to a server the policy drops), a SYN flood of
        `flood` unique 5-tuples from t=1 s to t=3 s with the conversations still talking, then
        60 s later (past the half-open timeout) more conversation traffic and 500 new flows."""
        recs, t = [], 0
        convs = [TcpConv("198.18.%d.%d" % (1, i + 1), 41000 + i,
                         "198.19.9.9" if i < 10 else "198.19.1.%d" % (i + 1), 80) for i in range(40)]
        for c in convs:
            for fr in c.handshake() + c.send(0, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"):
                recs.append((t, fr))
                t += 10
        talk = lambda: [c.seg(k % 2, ACK | PSH, b"x" * 100) for k, c in enumerate(convs)]
        t = 1000000
        for i in range(flood):
            src = bytes([198, 18, 128 + (i >> 16), (i >> 8) & 255])
            fr = ipv4(src, bytes([198, 19, 200, i & 255]), 6, tcp(1024 + (i & 0x3fff), 443, i, 0, SYN))
            recs.append((t, fr))
            t += 100
            if i % 500 == 0:
                for fr in talk():
                    recs.append((t, fr))
        t = 63000000
        for _ in range(100):  # housekeeping rounds at the new time: the half-open flows expire
            for fr in talk():
                recs.append((t, fr))
                t += 10
        new = [TcpConv("198.18.50.%d" % (i % 250 + 1), 30000 + i, "198.19.2.1", 80) for i in range(500)]
        for c in new:
            for fr in c.handshake() + c.send(0, b"hello"):
                recs.append((t, fr))
                t += 10
        return recs, convs, new

    def test_flow_table_flood(self):
        # The protocols marker leaves the flood's SYNs undecided without an entry (nDPI could
        # still name Telnet), so --on-flow-table-full decides them; with only ips and the
        # default they would be certain passes (flows.flowless.pass).
        pol = self.policy("version: 1\ndefault_policy: p\npolicies:\n"
                          "  p: {default: pass, ips: {198.19.9.9: drop}, protocols: {Telnet: drop}}\n")
        args = ["--flows", str(self.CAP), "--on-flow-table-full", "drop", "--policy", pol]
        base_recs, _, _ = self.build(0)
        base = self.run_records("noflood", base_recs, args, rss=True)
        recs, convs, new = self.build(self.FLOOD)
        r = self.run_records("flood", recs, args, rss=True)
        st = r.stats
        out = flow_frames([f for _, f in read_pcap_records(r.outs[1][0])])
        sent = flow_frames([f for _, f in recs])
        passed_est = dropped_est = 0
        for i, c in enumerate(convs):
            k = harness.frame_flow_key(c.handshake()[0])
            if i < 10:
                self.assertNotIn(k, out, "a dropped flow stays dropped through the flood")
                dropped_est += len(sent[k])
            else:
                self.assertEqual(len(out.get(k, [])), len(sent[k]), "established flow %d lost frames" % i)
                passed_est += len(sent[k])
        for c in new:
            k = harness.frame_flow_key(c.handshake()[0])
            self.assertEqual(len(out.get(k, [])), len(sent[k]), "a new flow after the flood was not forwarded")
        free = self.CAP - len(convs)
        fl = st["flows"]
        self.assertEqual(fl["table_full"], self.FLOOD - free, fl)
        self.assertEqual(st["drops"]["table_full"], self.FLOOD - free)
        self.assertEqual(self.nonzero(fl["flowless"]), {"undecided_drop": self.FLOOD - free}, fl)
        self.assertEqual(self.nonzero(st["drops"]), {"table_full": self.FLOOD - free, "policy": dropped_est})
        self.assertEqual(fl["created"], len(convs) + free + len(new), fl)
        self.assertGreaterEqual(fl["expired"], free, "the flood's half-open flows expire")
        growth = r.peak_rss_kib - base.peak_rss_kib
        self.assertLess(growth, 16 * 1024, "peak RSS grew %d KiB with the flood" % growth)
        report("flow-table flood: %d SYNs at %dx a %d-flow table: table_full=%d (drops.table_full=%d), "
               "established flows %d/%d frames passed, dropped flows stayed dropped (%d frames), "
               "expired after the flood=%d, new flows after it %d/%d created, peak RSS %d KiB vs %d KiB "
               "without the flood (+%d KiB)"
               % (self.FLOOD, self.FLOOD // self.CAP, self.CAP, fl["table_full"], st["drops"]["table_full"],
                  passed_est, passed_est, dropped_est, fl["expired"], len(new), len(new),
                  r.peak_rss_kib, base.peak_rss_kib, growth))


class DpiPoolExhaustionTest(HostileBase):
    def test_more_flows_in_classification_than_states(self):
        n, pool = 1500, 512
        recs, t = [], 0
        payload = lambda i: b"\x9e\x51" + struct.pack("!I", i) + bytes(26)
        ends = [("198.18.3.%d" % (i % 250 + 1), 20000 + i, "198.19.3.%d" % (i // 250 + 1), 47000) for i in range(n)]
        for i, (c, cp, sv, sp) in enumerate(ends):
            recs.append((t, ipv4(c, sv, 17, hostile.udp(cp, sp, payload(i)))))
            t += 10
        for i, (c, cp, sv, sp) in enumerate(ends):
            recs.append((t, ipv4(sv, c, 17, hostile.udp(sp, cp, payload(i)))))
            t += 10
        flows = os.path.join(self.work, "flows.jsonl")
        r = self.run_records("dpi", recs, ["--dpi-flows", str(pool), "--flow-log", flows])
        st = r.stats
        cls = st["classification"]
        self.assertEqual(st["totals"]["tx_packets"], len(recs), "overflow flows are still forwarded")
        self.assertEqual(st["flows"]["created"], n)
        self.assertEqual(cls["dpi_pool_full"], n - pool, cls)
        self.assertEqual(cls["dpi_reclaimed"], 0, "UDP flows are not half-open TCP: nothing to reclaim")
        self.assertEqual(cls["ndpi_arena_refused"] + cls["ndpi_arena_full"], 0, "the arena (sized from --dpi-flows) ran low")
        with open(flows) as f:
            log = [json.loads(x) for x in f]
        unknown = sum(1 for x in log if x.get("l7_proto") == "Unknown")
        self.assertGreaterEqual(unknown, n - pool)
        report("nDPI state exhaustion: %d UDP flows in classification, %d states: dpi_pool_full=%d, "
               "all %d frames forwarded, arena refusals=%d, %d flows logged Unknown"
               % (n, pool, cls["dpi_pool_full"], len(recs), cls["ndpi_arena_refused"], unknown))


class FragmentAttackTest(HostileBase):
    def test_fragment_attacks(self):
        frags = 1024
        recs, t = [], 0
        req = b"GET /index.html HTTP/1.1\r\nHost: frag.test\r\n\r\n" * 4

        def add(frames):
            nonlocal t
            for fr in frames:
                recs.append((t, fr))
                t += 10
        # 1. tiny first fragments: 8 bytes of TCP header (no flags, no data offset).
        tiny = [hostile.tcp_fragments("198.18.4.1", 42000 + i, "198.19.4.1", 80, 100 + i, req, 8) for i in range(10)]
        for d in tiny:
            add(d)
        # 2. overlapping later fragments (each starts 16 bytes into the previous one) of a flow
        # that passes, and 3. of a flow to a server the policy drops.
        ov_pass = [hostile.tcp_fragments("198.18.4.2", 43000 + i, "198.19.4.2", 80, 200 + i, req, 24, overlap=16) for i in range(5)]
        ov_drop = [hostile.tcp_fragments("198.18.4.3", 44000 + i, "198.19.9.9", 80, 300 + i, req, 24, overlap=16) for i in range(5)]
        for d in ov_pass + ov_drop:
            add(d)
        # 4. a flood of first fragments (distinct ids) beyond the fragment table.
        flood = [hostile.tcp_fragments("198.18.4.4", 45000, "198.19.4.4", 80, 1000 + i, req, 24) for i in range(5000)]
        add([d[0] for d in flood])
        # 5. IPv6 extension-header chains: 8 (the limit) pass, 9, 12 and 40 are refused.
        chains = {8: 5, 9: 5, 12: 5, 40: 5}
        for n_ext, count in chains.items():
            add([hostile.ipv6_ext_chain(n_ext, src_last=n_ext, sport=6000 + k) for k in range(count)])
        pol = self.policy("version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, ips: {198.19.9.9: drop}}\n")
        r = self.run_records("frags", recs, ["--frags", str(frags), "--policy", pol])
        st = r.stats
        mal, drops, fr = st["malformed"], st["drops"], st["fragments"]
        tiny_later = sum(len(d) - 1 for d in tiny)
        ov_pass_later = sum(len(d) - 1 for d in ov_pass)
        ov_drop_later = sum(len(d) - 1 for d in ov_drop)
        self.assertEqual(mal["tcp_truncated"], 10, "tiny first fragments: no flow, counted")
        self.assertEqual(mal["frag_no_first"], tiny_later, mal)
        self.assertEqual(fr["matched"], ov_pass_later + ov_drop_later, "overlapping fragments follow their flow")
        self.assertEqual(drops["policy"], len(ov_drop) + ov_drop_later, "the dropped flow's fragments, all of them")
        self.assertEqual(mal["ipv6_ext_too_long"], chains[9] + chains[12] + chains[40])
        # The fragment table: 10 first fragments (5 of a passed flow, 5 of a dropped one), then the
        # flood, compete for its entries.
        self.assertGreater(fr["table_full"], 0)
        self.assertLessEqual(fr["tracked"], frags)
        self.assertEqual(fr["tracked"] + fr["table_full"], len(ov_pass) + len(ov_drop) + len(flood))
        out = [f for _, f in read_pcap_records(r.outs[1][0])]
        self.assertEqual(sum(1 for f in out if f in set(x for d in ov_drop for x in d)), 0)
        self.assertEqual(sum(1 for f in out if f in set(x for d in ov_pass for x in d)), sum(len(d) for d in ov_pass))
        report("fragments: %d tiny first fragments -> tcp_truncated=%d and their %d later fragments -> "
               "frag_no_first; overlapping fragments: %d of a passed flow matched and forwarded, %d of a "
               "dropped flow matched and dropped (policy); %d-first-fragment flood on a %d-entry table: "
               "tracked=%d table_full=%d; IPv6 chains of 9/12/40 headers: ipv6_ext_too_long=%d, 8 headers passed"
               % (len(tiny), mal["tcp_truncated"], tiny_later, ov_pass_later, ov_drop_later, len(flood), frags,
                  fr["tracked"], fr["table_full"], mal["ipv6_ext_too_long"]))


class MalformedL7Test(HostileBase):
    def test_malformed_l7(self):
        recs, t = [], 0
        convs = {"tls": hostile.truncated_tls("198.18.5.1", 46001, "198.19.5.1"),
                 "http": hostile.huge_http_headers("198.18.5.1", 46002, "198.19.5.1"),
                 "dns": hostile.dns_compression_loop("198.18.5.1", 46003, "198.19.5.1")
                 + hostile.dns_compression_loop("198.18.5.1", 46004, "198.19.5.1", ident=0x4321)}
        for frames in convs.values():
            for fr in frames:
                recs.append((t, fr))
                t += 100
        flows = os.path.join(self.work, "flows.jsonl")
        r = self.run_records("l7bad", recs, ["--flow-log", flows])
        st = r.stats
        self.assertEqual(st["totals"]["tx_packets"], len(recs), "nothing dropped without a policy")
        self.assertEqual(st["flows"]["created"], 4)
        self.assertEqual(st["classification"]["ndpi_arena_refused"], 0)
        with open(flows) as f:
            log = {x["src_port"]: x for x in map(json.loads, f)}
        self.assertEqual(sorted(log), [46001, 46002, 46003, 46004])
        got = {k: (log[k]["l7_proto"], log[k]["host"]) for k in sorted(log)}
        self.assertEqual(log[46001]["l7_proto"].split(".")[0], "TLS", got)
        self.assertEqual(log[46002]["l7_proto"], "HTTP", got)
        self.assertEqual(log[46002]["host"], "huge.example", got)
        self.assertEqual(log[46003]["l7_proto"], "DNS", got)
        report("malformed L7: truncated TLS record, %d-byte HTTP header block, 2 DNS compression loops: "
               "%d frames forwarded, flows %r"
               % (len(b"".join(convs["http"])), len(recs), got))


class RejectFloodTest(HostileBase):
    def test_reject_rate_limit_under_flood(self):
        rate, n, span_us = 100, 5000, 2000000
        rng = random.Random(3)
        recs = [(i * span_us // n, hostile.syn(rng, dst_port=23)) for i in range(n)]
        pol = self.policy("version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, protocols: {Telnet: reject}, ips: {198.19.0.0/16: reject}}\n")
        r = self.run_records("rejflood", recs, ["--policy", pol, "--reject-rate", str(rate)])
        st = r.stats
        inj = st["injected"]
        limit = rate * span_us // 1000000 + rate // 10 + 1
        self.assertEqual(st["drops"]["policy"], n)
        self.assertLessEqual(inj["sent"], limit, inj)
        self.assertGreaterEqual(inj["sent"], rate * span_us // 1000000 * 9 // 10, "the limiter lets the rate through")
        self.assertEqual(inj["sent"] + inj["limited"] + inj["failed"], n, "one RST|ACK wanted per SYN")
        back = read_pcap_records(r.outs[0][0])
        self.assertEqual(len(back), inj["sent"], "RSTs on the wire = injected.sent")
        report("reject flood: %d rejected SYNs over %.1f s at --reject-rate %d: sent=%d (limit %d), limited=%d"
               % (n, span_us / 1e6, rate, inj["sent"], limit, inj["limited"]))


class MbufPressureTest(HostileBase):
    def test_shaper_cannot_hold_the_pool(self):
        # A shaper with a long queue (8,192 packets, max_delay 10 s) offered 6,000 frames far
        # beyond its rate, next to an unshaped flow, in a 4,096-mbuf pool: before issue 18 the
        # queue held the whole pool and the PMD could not receive (rx_nombuf). Now the worker's
        # backlog cap, 4,096 - 1,024 spare - (2 ports x (256 + 256) + 384 cache + 256 in
        # flight + 1,024 first-flight segments) = 384, bounds what it holds; beyond it packets
        # are dropped as shaper_backlog and everything is received.
        n = 6000
        cap = 384
        shaped = ipv4("198.18.6.1", "198.19.6.1", 17, hostile.udp(50000, 50001, b"p" * 900))
        free = ipv4("198.18.6.2", "198.19.7.1", 17, hostile.udp(50002, 50003, b"f" * 100))
        recs = []
        for i in range(n):
            recs.append((i * 10, shaped))
            if i % 10 == 0:
                recs.append((i * 10 + 5, free))
        nfree = len(recs) - n
        pol = self.policy("version: 1\ndefault_policy: p\nshapers:\n"
                          "  slow: {rate: 64kbit, burst: 2kb, queue: 8192, max_delay: 10s}\n"
                          "policies:\n  p: {default: pass, ips: {198.19.6.0/24: \"shape:slow\"}}\n")
        r = self.run_records("nombuf", recs, ["--policy", pol, "--mbufs", "4096", "--rxd", "256", "--txd", "256"])
        st = r.stats
        p0 = st["ports"][0]
        pools = st["mempools"]
        self.assertEqual(len(pools), 1, pools)
        self.assertEqual(pools[0]["size"], 4096)
        self.assertEqual(p0["rx_nombuf"], 0, "the shaper emptied the pool")
        self.assertEqual(st["shapers"]["backlog_cap"], cap)
        drops = st["drops"]
        out = read_pcap_records(r.outs[1][0])
        self.assertEqual(sum(1 for _, fr in out if fr[30:34] == bytes([198, 19, 7, 1])), nfree,
                         "the unshaped flow lost packets")
        sh = st["shapers"]["by_shaper"]["slow"]
        self.assertGreater(drops["shaper_backlog"], 0, drops)
        self.assertLessEqual(drops["shaper_flush"], cap, drops)
        self.assertGreater(drops["shaper_flush"], cap * 3 // 4, "the queue held about the cap at the stop")
        self.assertEqual(sh["sent"] + sh["delayed"] + drops["shaper_backlog"] + drops["shaper_overflow"]
                         + drops["shaper_delay"] + drops["shaper_flush"], n, (sh, drops))
        report("mbuf pressure: a shaper queue of 8192 in a 4096-mbuf pool, 6000 frames beyond its rate and %d "
               "unshaped: backlog cap %d, rx_nombuf=%d, shaper_backlog=%d, shaper_flush=%d, unshaped forwarded "
               "%d/%d, mbufs in use at exit=%s"
               % (nfree, st["shapers"]["backlog_cap"], p0["rx_nombuf"], drops["shaper_backlog"],
                  drops["shaper_flush"], nfree, nfree, [m["in_use"] for m in pools]))


if __name__ == "__main__":
    harness.main()
