#!/usr/bin/python3
"""Integration tests: jumbo frames and frames longer than one mbuf (issue 20, point 3).

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_jumbo.py -v

One capture, generated here with scapy, replayed into port 0 of two net_pcap ports; net_pcap
hands every frame longer than one 2 KiB mbuf to l7gate as a chain of mbufs:
  - a UDP flow of 9,000-byte IP datagrams (9,014-byte frames, one with a VLAN tag: 9,018);
  - a TCP flow carrying 8,960-byte segments both ways;
  - a TLS 1.2 flow whose server flight (ServerHello, a self-signed certificate of more than
    2 KiB whose names do not match the SNI, ServerHelloDone) is one 3 KB segment;
  - over the MTU: a UDP datagram of 9,001 bytes of IP, and an 18,020-byte frame (the largest
    in the shared offload captures).
With --mtu 9000: every frame but the two over-MTU ones leaves port 1 byte for byte, in order;
the flow log counts each flow's whole frames; nDPI names the TLS flow, its SNI and the
certificate's risks; the two are dropped as over_mtu; nothing is ipv4_bad_length. Without
--mtu, frames up to one 2 KiB mbuf are taken (IP length up to 2022, as before --mtu existed):
every frame longer than 2,044 bytes is over_mtu, the rest leaves.
"""

import datetime
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import read_pcap, write_pcap_records, run_l7gate, require_binary  # noqa: E402

try:
    from scapy.all import Ether, Dot1Q, IP, TCP, UDP, Raw, raw  # noqa: E402
except ImportError:  # reported by setUp
    Ether = None

SNI = "www.jumbo-test.example"
CLIENT, SERVER = "198.18.7.10", "198.19.7.80"
T0 = 1700000000 * 1000000  # 2023-11-14, inside the certificate's validity


def self_signed_cert():
    """A self-signed RSA certificate of more than 2 KiB (many subject alternative names, none
    of them the SNI), DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "l7gate jumbo test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "other.invalid")])
    sans = [x509.DNSName("host%02d.other-name.invalid" % i) for i in range(60)]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x7E57).not_valid_before(datetime.datetime(2023, 9, 1))
            .not_valid_after(datetime.datetime(2024, 8, 30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def tls_record(ctype, body):
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def tls_hs(msg_type, body):
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def client_hello(host):
    name = host.encode()
    exts = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    exts += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"
    exts += struct.pack("!HHB", 11, 2, 1) + b"\x00"
    exts += struct.pack("!HHH", 13, 4, 2) + b"\x04\x01"
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 4) + b"\xc0\x2f\x00\x9c"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return tls_record(22, tls_hs(1, body))


def server_flight(cert):
    exts = struct.pack("!HHB", 65281, 1, 0) + struct.pack("!HHB", 11, 2, 1) + b"\x00"
    hello = (b"\x03\x03" + bytes(range(100, 132)) + b"\x20" + bytes(range(32)) + struct.pack("!HB", 0xC02F, 0)
             + struct.pack("!H", len(exts)) + exts)
    certs = len(cert).to_bytes(3, "big") + cert
    return (tls_record(22, tls_hs(2, hello)) + tls_record(22, tls_hs(11, len(certs).to_bytes(3, "big") + certs))
            + tls_record(22, tls_hs(14, b"")))


class Tcp:
    """One TCP connection with consistent sequence numbers (client side 0)."""

    def __init__(self, sport, dport):
        self.ports = (sport, dport)
        self.seq = [1000, 500000]

    def seg(self, side, flags, payload=b""):
        sp, dp = self.ports if side == 0 else self.ports[::-1]
        src, dst = (CLIENT, SERVER) if side == 0 else (SERVER, CLIENT)
        p = (Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02") / IP(src=src, dst=dst, flags="DF")
             / TCP(sport=sp, dport=dp, seq=self.seq[side], ack=self.seq[1 - side], flags=flags))
        if payload:
            p = p / Raw(payload)
        self.seq[side] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return raw(p)

    def handshake(self):
        return [self.seg(0, "S"), self.seg(1, "SA"), self.seg(0, "A")]

    def close(self):
        return [self.seg(0, "FA"), self.seg(1, "FA"), self.seg(0, "A")]


def udp(sport, ip_len, vlan=None, reply=False):
    src, dst = (SERVER, CLIENT) if reply else (CLIENT, SERVER)
    sp, dp = (9, sport) if reply else (sport, 9)
    l2 = Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return raw(l2 / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(bytes(ip_len - 28)))


def build_capture():
    """[(name, frame)] in capture order; name says which flow (or over-MTU case) it is."""
    out = []
    # UDP: 9,000 bytes of IP each way; one tagged (the VLAN makes it a flow of its own).
    for i in range(3):
        out.append(("udp", udp(41000, 9000)))
        out.append(("udp", udp(41000, 9000, reply=True)))
    out.append(("udp-vlan", udp(41001, 9000, vlan=7)))
    # TCP bulk: 8,960-byte segments (IP 9,000) both ways.
    t = Tcp(42000, 5001)
    out += [("tcp", f) for f in t.handshake()]
    for i in range(3):
        out.append(("tcp", t.seg(0, "PA", bytes([i]) * 8960)))
        out.append(("tcp", t.seg(1, "A")))
    out.append(("tcp", t.seg(1, "PA", b"\x55" * 8960)))
    out.append(("tcp", t.seg(0, "A")))
    out += [("tcp", f) for f in t.close()]
    # TLS: the whole server flight in one segment.
    s = Tcp(43000, 443)
    out += [("tls", f) for f in s.handshake()]
    out.append(("tls", s.seg(0, "PA", client_hello(SNI))))
    flight = server_flight(self_signed_cert())
    assert len(flight) > 2048, len(flight)
    out.append(("tls", s.seg(1, "PA", flight)))
    out.append(("tls", s.seg(0, "PA", tls_record(22, tls_hs(16, b"\x00" * 66)) + tls_record(20, b"\x01")
                             + tls_record(22, bytes(40)))))
    out.append(("tls", s.seg(1, "PA", tls_record(20, b"\x01") + tls_record(22, bytes(40)))))
    out.append(("tls", s.seg(0, "PA", tls_record(23, bytes(300)))))
    out += [("tls", f) for f in s.close()]
    # Over the MTU (9000): one byte of IP too many; and an 18,020-byte frame.
    out.append(("over-ip", udp(44000, 9001)))
    out.append(("over-frame", udp(44001, 18020 - 14)))
    return out


class JumboFrames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="l7gate-jumbo-")
        cls.runs = {}
        cls.frames = None
        cls.setup_error = None
        if Ether is None:
            cls.setup_error = "scapy missing"
            return
        try:
            import cryptography  # noqa: F401
        except ImportError:
            cls.setup_error = "python3-cryptography missing"
            return
        cls.frames = build_capture()
        cls.pcap = os.path.join(cls.work, "jumbo.pcap")
        write_pcap_records(cls.pcap, [(T0 + i * 1000, f) for i, (_, f) in enumerate(cls.frames)])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        require_binary(self)
        if self.setup_error:
            self.fail(self.setup_error)

    def run_mtu(self, mtu):
        """One l7gate run per MTU (None: the default), shared by the cases."""
        if mtu not in self.runs:
            flows = os.path.join(self.work, "flows-%s.jsonl" % mtu)
            args = ["--clock", "capture", "--flow-log", flows]
            if mtu is not None:
                args += ["--mtu", str(mtu)]
            r = run_l7gate(self.work, "jumbo-%s" % mtu, [[self.pcap], [self.empty()]], args)
            self.assertEqual(r.rc, 0, r.describe())
            with open(flows) as f:
                r.flows = [json.loads(line) for line in f if line.strip()]
            self.runs[mtu] = r
        return self.runs[mtu]

    def empty(self):
        p = os.path.join(self.work, "empty.pcap")
        if not os.path.exists(p):
            write_pcap_records(p, [])
        return p

    def flow(self, r, sport):
        got = [f for f in r.flows if sport in (f["src_port"], f["dst_port"])]
        self.assertEqual(len(got), 1, "flows with port %d: %r" % (sport, got))
        return got[0]

    def sent_bytes(self, name):
        c2s = sum(len(f) for n, f in self.frames if n == name and IP(f[14:] if f[12:14] == b"\x08\x00"
                                                                    else f[18:]).src == CLIENT)
        s2c = sum(len(f) for n, f in self.frames if n == name) - c2s
        return c2s, s2c

    def test_1_jumbo_frames_leave_byte_for_byte(self):
        r = self.run_mtu(9000)
        self.assertIn("MTU 9000, scattered RX", r.stdout, "the start-up says how frames are received")
        out = read_pcap(r.outs[1][0])
        want = [f for n, f in self.frames if not n.startswith("over-")]
        self.assertEqual(len(out), len(want), "frames out of port 1")
        for i, (a, b) in enumerate(zip(out, want)):
            self.assertEqual(a, b, "frame %d (%d bytes) differs" % (i, len(b)))
        self.assertGreater(sum(1 for f in want if len(f) > 2048), 10, "the capture has chained frames")

    def test_2_flow_bytes_are_whole_frames(self):
        r = self.run_mtu(9000)
        for name, sport in (("udp", 41000), ("udp-vlan", 41001), ("tcp", 42000), ("tls", 43000)):
            with self.subTest(flow=name):
                f = self.flow(r, sport)
                self.assertEqual((f["c2s_bytes"], f["s2c_bytes"]), self.sent_bytes(name))
                n = sum(1 for x, _ in self.frames if x == name)
                self.assertEqual(f["c2s_packets"] + f["s2c_packets"], n)
        m = r.stats["malformed"]
        self.assertEqual(sum(m.values()) if isinstance(m, dict) else m, 0, "nothing malformed: %r" % m)

    def test_3_tls_server_flight_in_one_large_segment_is_classified(self):
        f = self.flow(self.run_mtu(9000), 43000)
        self.assertIn("TLS", f["l7_proto"])
        self.assertEqual(f["host"], SNI)
        risks = " ".join(f["risks"])
        self.assertRegex(risks, "(?i)self-signed", "risks: %r" % f["risks"])
        self.assertRegex(risks, "(?i)mismatch", "risks: %r" % f["risks"])

    def test_4_over_mtu_frames_are_dropped_with_their_reason(self):
        r = self.run_mtu(9000)
        self.assertEqual(r.stats["drops"].get("over_mtu"), 2, r.stats["drops"])
        self.assertEqual([f for f in r.flows if f["src_port"] in (44000, 44001)], [], "no flow for them")

    def test_5_without_mtu_frames_up_to_one_mbuf(self):
        r = self.run_mtu(None)
        self.assertNotIn("scattered RX", r.stdout)
        over = sum(1 for _, f in self.frames if len(f) > 2044)
        self.assertEqual(r.stats["drops"].get("over_mtu"), over, r.stats["drops"])
        out = read_pcap(r.outs[1][0])
        self.assertEqual(out, [f for _, f in self.frames if len(f) <= 2044])


if __name__ == "__main__":
    harness.main()
