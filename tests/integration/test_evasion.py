#!/usr/bin/python3
"""Integration tests: the classic ways to hide a hostname from l7gate (issue 18, point 7).

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_evasion.py -v

One capture holds every case, each a TCP connection of its own (both directions, in capture
order, into port 0); the policy drops the hostnames *.youtube.com. A victim case sends a
ClientHello (or HTTP request) for www.youtube.com in a hostile shape; a control case sends
the same shape for www.example.org. For a victim, none of its client payload may leave port 1
(what the server would have received); for a control, every client payload byte leaves, in
order, exactly as sent first. The figures are printed as "evasion: ..." lines; README's
security table quotes them. One l7gate run (plus one with --on-unnamed-first-flight pass for
the cases that rely on the fail-closed default).
"""

import os
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, write_pcap_records, run_l7gate, require_binary, figure  # noqa: E402

try:
    from scapy.all import Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, Raw, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, raw  # noqa: E402
    from scapy.all import fragment as ip_fragment, fragment6  # noqa: E402
except ImportError:  # reported by setUp
    Ether = None

POLICY = """
version: 1
default_policy: lan
lists:
  blocked_names: {hostnames: ["*.youtube.com"]}
policies:
  lan:
    default: pass
    hostnames: {"@blocked_names": drop}
"""

BLOCKED = "www.youtube.com"
ALLOWED = "www.example.org"
SERVER4, SERVER6 = "198.19.0.80", "2001:db8:1::80"
FRAG_IDS = {"tls-ip-fragments-ipv4-victim": 98, "tls-ip-fragments-ipv6-victim": 77,
            "tls-overlapping-ip-fragments-victim": 99}
CLIENT4, CLIENT6 = "198.18.1.10", "2001:db8:100::10"


def client_hello(host, pad_before_sni=0):
    """A TLS 1.2 ClientHello record naming `host` (SNI), after `pad_before_sni` bytes of an
    unknown extension when asked."""
    name = host.encode()
    sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    exts = b""
    if pad_before_sni:
        exts += struct.pack("!HH", 0xFAFA, pad_before_sni) + b"\x00" * pad_before_sni
    exts += sni
    exts += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"          # supported_groups: x25519
    exts += struct.pack("!HHB", 11, 2, 1) + b"\x00"              # ec_point_formats
    exts += struct.pack("!HHH", 13, 4, 2) + b"\x04\x03"          # signature_algorithms
    exts += struct.pack("!HH", 21, 400) + bytes(400)             # padding: a 517-byte record, as browsers send
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 4) + b"\xc0\x2f\x00\x9c"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def http_request(host_line):
    return (b"GET /watch?v=abc HTTP/1.1\r\n" + host_line + b"\r\nUser-Agent: curl/7.88\r\n"
            b"Accept: */*\r\n\r\n")


class Conn:
    """One TCP connection with consistent sequence numbers; frames as scapy packets."""

    def __init__(self, sport, v6=False, vlans=(), ext_headers=0):
        self.sport, self.v6, self.vlans, self.ext = sport, v6, vlans, ext_headers
        self.seq = [100000, 900000]

    def l3(self, side):
        c, s = (CLIENT6, SERVER6) if self.v6 else (CLIENT4, SERVER4)
        src, dst = (c, s) if side == 0 else (s, c)
        if self.v6:
            p = IPv6(src=src, dst=dst)
            for _ in range(self.ext):
                p = p / IPv6ExtHdrDestOpt()
            return p
        return IP(src=src, dst=dst)

    def l2(self):
        if not self.vlans:
            return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        if len(self.vlans) >= 2:
            p = p / Dot1AD(vlan=self.vlans[0])
            for v in self.vlans[1:]:
                p = p / Dot1Q(vlan=v)
        else:
            p = p / Dot1Q(vlan=self.vlans[0])
        return p

    def pkt(self, side, flags, payload=b"", seq=None):
        sp, dp = (self.sport, 443) if side == 0 else (443, self.sport)
        s = self.seq[side] if seq is None else seq
        p = self.l2() / self.l3(side) / TCP(sport=sp, dport=dp, seq=s, ack=self.seq[1 - side], flags=flags)
        if payload:
            p = p / Raw(payload)
        return p

    def seg(self, side, flags, payload=b""):
        p = self.pkt(side, flags, payload)
        self.seq[side] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return p

    def handshake(self):
        return [self.seg(0, "S"), self.seg(1, "SA"), self.seg(0, "A")]

    def segments(self, data, size):
        """(seq, bytes) pieces of `size` bytes from the client's next sequence number."""
        base = self.seq[0]
        self.seq[0] += len(data)
        return [(base + i, data[i:i + size]) for i in range(0, len(data), size)]

    def at(self, seq, data, flags="PA"):
        return self.pkt(0, flags, data, seq=seq)

    def reply(self):
        return [self.seg(1, "PA", b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00")]


# -- the cases: name -> (frames, the bytes the server may receive or None for none) -----------------


def seg_case(sport, host, size, **kw):
    c = Conn(sport, **kw)
    hello = client_hello(host)
    frames = c.handshake() + [c.at(s, d) for s, d in c.segments(hello, size)] + c.reply()
    return frames, hello


def build_cases():
    cases = {}
    port = [20000]

    def nxt():
        port[0] += 1
        return port[0]

    for host, tag in ((BLOCKED, "victim"), (ALLOWED, "control")):
        blocked = tag == "victim"
        # Tiny segments.
        for size in (5, 20, 1) if blocked else (5, 20):
            fr, hello = seg_case(nxt(), host, size)
            cases["tls-%dbyte-%s" % (size, tag)] = (fr, None if blocked else hello)
        # Out of order: pairs swapped, then the client resends everything in order.
        c = Conn(nxt())
        hs = c.handshake()
        hello = client_hello(host)
        segs = c.segments(hello, 40)
        order = []
        for i in range(0, len(segs) - 1, 2):
            order += [segs[i + 1], segs[i]]
        if len(segs) % 2:
            order.append(segs[-1])
        fr = hs + [c.at(s, d) for s, d in order] + [c.at(s, d) for s, d in segs] + c.reply()
        cases["tls-out-of-order-%s" % tag] = (fr, None if blocked else hello)
        # Overlapping segments with the same bytes (each starts 10 bytes into the previous one).
        c = Conn(nxt())
        hs = c.handshake()
        hello = client_hello(host)
        base = c.seq[0]
        c.seq[0] += len(hello)
        fr = hs + [c.at(base + i, hello[i:i + 30]) for i in range(0, len(hello), 20)] + c.reply()
        cases["tls-overlap-same-%s" % tag] = (fr, None if blocked else hello)
        # Retransmission with other bytes: `host` first, then the other name over the same range.
        c = Conn(nxt())
        fr = c.handshake()
        first, second = client_hello(host), client_hello(ALLOWED if blocked else BLOCKED)
        segs1 = c.segments(first, 50)
        segs2 = [(s, second[s - segs1[0][0]:s - segs1[0][0] + 50]) for s, _ in segs1]
        for a, b in zip(segs1, segs2):
            fr += [c.at(*a), c.at(*b)]
        fr += c.reply()
        cases["tls-retransmit-other-bytes-%s" % tag] = (fr, None if blocked else first)
        # The SNI after 1,500 bytes of other extensions (two full-size segments).
        c = Conn(nxt())
        hello = client_hello(host, pad_before_sni=1500)
        fr = c.handshake() + [c.at(s, d) for s, d in c.segments(hello, 1400)] + c.reply()
        cases["tls-sni-after-1500-bytes-%s" % tag] = (fr, None if blocked else hello)
        # Mid-stream: no handshake seen, the ClientHello in 5-byte segments.
        c = Conn(nxt())
        hello = client_hello(host)
        fr = [c.at(s, d) for s, d in c.segments(hello, 5)] + c.reply()
        cases["tls-midstream-%s" % tag] = (fr, None if blocked else hello)
        # IPv6 behind 8 destination-options headers, 5-byte segments.
        fr, hello = seg_case(nxt(), host, 5, v6=True, ext_headers=8)
        cases["tls-ipv6-8-ext-headers-%s" % tag] = (fr, None if blocked else hello)
        # Two VLAN tags (802.1ad + 802.1Q), 5-byte segments.
        fr, hello = seg_case(nxt(), host, 5, vlans=(100, 200))
        cases["tls-double-vlan-%s" % tag] = (fr, None if blocked else hello)
        # HTTP, the Host header in a later segment of 3-byte pieces.
        c = Conn(nxt())
        req = http_request(b"Host: " + host.encode())
        fr = c.handshake() + [c.at(s, d) for s, d in c.segments(req, 3)] + c.reply()
        cases["http-3byte-%s" % tag] = (fr, None if blocked else req)

    # Hostnames in odd shapes against the rule (victims only).
    fr, _ = seg_case(nxt(), "WWW.YouTube.com.", 2000)
    cases["tls-upper-case-trailing-dot-victim"] = (fr, None)
    for i, line in enumerate((b"hOsT:   WWW.YouTube.com.  ", b"Host:\tWWW.YOUTUBE.COM", b"HOST: www.youtube.com.")):
        c = Conn(nxt())
        req = http_request(line)
        fr = c.handshake() + [c.at(s, d) for s, d in c.segments(req, 7)] + c.reply()
        cases["http-host-odd-%d-victim" % i] = (fr, None)

    # IP fragments: one segment carrying the whole ClientHello, cut so that the SNI lies in a
    # later fragment (IPv4: 48-byte pieces; IPv6: 56-byte pieces).
    for v6 in (False, True):
        c = Conn(nxt(), v6=v6)
        hs = c.handshake()
        hello = client_hello(BLOCKED)
        s, d = c.segments(hello, len(hello))[0]
        p = c.at(s, d)
        if v6:
            l3 = p[IPv6]
            frags = fragment6(Ether(src=p.src, dst=p.dst) / IPv6(src=l3.src, dst=l3.dst) / IPv6ExtHdrFragment(id=77)
                              / l3.payload, 120)
        else:
            p[IP].flags = 0
            p[IP].id = 98
            frags = [Ether(src=p.src, dst=p.dst) / f for f in ip_fragment(p[IP], 48)]
        fr = hs + frags + c.reply()
        cases["tls-ip-fragments-%s-victim" % ("ipv6" if v6 else "ipv4")] = (fr, None)
    # Overlapping IPv4 fragments with other bytes: the first fragment carries the TCP header
    # and the start of the ClientHello (no name yet); two later fragments both cover byte 48
    # to the end (where the SNI lies), one with another ClientHello's bytes, one with the
    # blocked one's: which one a server keeps depends on its stack.
    c = Conn(nxt())
    hs = c.handshake()
    hello = client_hello(BLOCKED)
    other = client_hello(ALLOWED)
    s, d = c.segments(hello, len(hello))[0]
    p = c.at(s, d)
    l4 = raw(p[TCP])
    l4_other = raw(c.at(s, other)[TCP])
    pieces = []
    for off, src, more in ((0, l4[:48], True), (48, l4_other[48:], False), (48, l4[48:], False)):
        ip = IP(src=CLIENT4, dst=SERVER4, proto=6, id=99, frag=off // 8, flags="MF" if more else 0)
        pieces.append(Ether(src=p.src, dst=p.dst) / ip / Raw(src))
    fr = hs + pieces + c.reply()
    cases["tls-overlapping-ip-fragments-victim"] = (fr, None)
    return cases


def client_payloads(frames, sport, frag_id=None):
    """[(seq, payload)] of the client's TCP segments (sport) among frames (scapy); with frag_id, the
    later IPv4/IPv6 fragments of that id too, as (None, fragment payload)."""
    out = []
    for p in frames:
        if IPv6ExtHdrFragment in p and p[IPv6ExtHdrFragment].id == frag_id and p[IPv6ExtHdrFragment].offset:
            out.append((None, bytes(p[IPv6ExtHdrFragment].payload)))
        elif IP in p and p[IP].frag and p[IP].id == frag_id:
            out.append((None, bytes(p[IP].payload)))
        elif TCP in p and p[TCP].sport == sport and len(p[TCP].payload):
            out.append((p[TCP].seq, bytes(p[TCP].payload)))
    return out


def case_port(frames):
    for p in frames:
        if TCP in p:
            return p[TCP].sport if p[TCP].dport == 443 else p[TCP].dport
    return None


class EvasionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = None
        if Ether is None or not harness.BIN or not os.path.exists(harness.BIN) or os.geteuid() != 0:
            return
        cls.work = tempfile.mkdtemp(prefix="l7gate-evasion-")
        cls.cases = build_cases()
        records, t = [], 1700000000 * 1000000
        cls.ports = {}
        for name, (frames, _) in cls.cases.items():
            cls.ports[name] = case_port(frames)
            for p in frames:
                records.append((t, raw(p)))
                t += 100
            t += 100000
        cls.input = os.path.join(cls.work, "evasion.pcap")
        write_pcap_records(cls.input, records)
        cls.empty = os.path.join(cls.work, "empty.pcap")
        write_pcap_records(cls.empty, [])
        cls.policy = os.path.join(cls.work, "policy.yaml")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        cls.runs = {}

    @classmethod
    def tearDownClass(cls):
        if cls.work:
            shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        if Ether is None:
            self.skipTest("scapy missing for /usr/bin/python3")
        require_binary(self)

    def run_once(self, rule):
        if rule not in self.runs:
            r = run_l7gate(self.work, "evasion-" + rule, [[self.input], [self.empty]],
                           ["--clock", "capture", "--policy", self.policy, "--on-unnamed-first-flight", rule])
            self.assertEqual(r.rc, 0, r.describe())
            self.runs[rule] = (r, [Ether(fr) for fr in read_pcap(r.outs[1][0])])
        return self.runs[rule]

    def check(self, name, rule="drop"):
        r, out = self.run_once(rule)
        frames, expect = self.cases[name]
        sent = client_payloads(out, self.ports[name], FRAG_IDS.get(name))
        if expect is None:
            figure("evasion " + name, "%d client payload frames forwarded (0 expected)" % len(sent))
            self.assertEqual(sent, [], "%s: the server received client payload of a dropped flow" % name)
        else:
            got = bytearray()
            base = min(s for s, _ in sent) if sent else 0
            for s, d in sorted(sent):
                off = s - base
                if off > len(got):
                    break
                got[off:off + len(d)] = d if off + len(d) > len(got) else got[off:off + len(d)]
            figure("evasion " + name, "%d client payload frames forwarded, %d of %d bytes" % (
                len(sent), len(got), len(expect)))
            self.assertEqual(bytes(got), expect, "%s: the server did not receive the first bytes sent" % name)
        return r

    # One test per attack of the issue; each checks its victim(s) and, where there is one, the
    # control case (same shape, allowed name: must still pass, byte for byte).
    def both(self, stem):
        self.check(stem + "-victim")
        self.check(stem + "-control")

    def test_tiny_segments(self):
        for size in (5, 20):
            self.both("tls-%dbyte" % size)
        # 1-byte segments: more than 128 held segments, decided on the first 128 bytes (no
        # name yet): the fail-closed default drops it, whatever the name.
        self.check("tls-1byte-victim")
        r, _ = self.run_once("drop")
        ff = r.stats["first_flight"]
        figure("evasion first_flight", ff)
        self.assertGreater(ff["complete"], 0)

    def test_out_of_order(self):
        self.both("tls-out-of-order")
        r, _ = self.run_once("drop")
        self.assertGreater(r.stats["drops"]["first_flight_out_of_order"], 0)

    def test_overlapping_segments(self):
        self.both("tls-overlap-same")

    def test_retransmission_with_other_bytes(self):
        self.both("tls-retransmit-other-bytes")
        r, _ = self.run_once("drop")
        self.assertGreater(r.stats["drops"]["first_flight_conflict"], 0)

    def test_sni_after_1500_bytes(self):
        self.both("tls-sni-after-1500-bytes")

    def test_midstream(self):
        self.both("tls-midstream")

    def test_ipv6_extension_headers(self):
        self.both("tls-ipv6-8-ext-headers")

    def test_double_vlan(self):
        self.both("tls-double-vlan")

    def test_http_split(self):
        self.both("http-3byte")

    def test_hostname_case_and_trailing_dot(self):
        self.check("tls-upper-case-trailing-dot-victim")

    def test_http_host_spacing_and_case(self):
        for i in range(3):
            self.check("http-host-odd-%d-victim" % i)

    def test_ip_fragments(self):
        # Not reassembled: the first fragment ends the first flight without a name, and the
        # fail-closed default drops the flow; with pass the ClientHello goes through (a gap).
        for v in ("ipv4", "ipv6"):
            self.check("tls-ip-fragments-%s-victim" % v)
        r, _ = self.run_once("drop")
        self.assertGreater(r.stats["first_flight"]["unnamed_drop"], 0)
        _, out = self.run_once("pass")
        for v in ("ipv4", "ipv6"):
            name = "tls-ip-fragments-%s-victim" % v
            sent = client_payloads(out, self.ports[name], FRAG_IDS.get(name))
            figure("evasion %s with --on-unnamed-first-flight pass" % name,
                   "%d client payload frames forwarded" % len(sent))

    def test_overlapping_ip_fragments(self):
        self.check("tls-overlapping-ip-fragments-victim")


if __name__ == "__main__":
    harness.main()
