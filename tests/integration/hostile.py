"""Hostile and malformed traffic for the robustness tests and the fuzz seed corpora.

Plain struct packing (no scapy), deterministic for a given random.Random. Checksums are left
at zero: l7gate neither checks nor needs them.
"""

import struct

ETH = bytes.fromhex("020000000001020000000002")


def pcap_bytes(records):
    """A classic pcap file of [(time in microseconds, frame bytes)]."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, fr in records:
        out.append(struct.pack("<IIII", t // 1000000, t % 1000000, len(fr), len(fr)))
        out.append(fr)
    return b"".join(out)


def write_timed_pcap(path, records):
    with open(path, "wb") as f:
        f.write(pcap_bytes(records))


def ip4(a):
    return bytes(int(x) for x in a.split(".")) if isinstance(a, str) else a


def eth(payload, ethertype=0x0800):
    return ETH + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, l4, ident=0, frag_off=0, more=False, total=None):
    flags = (0x2000 if more else 0) | (frag_off // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total if total is not None else 20 + len(l4), ident,
                      flags, 64, proto, 0, ip4(src), ip4(dst))
    return eth(hdr + l4)


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04


class TcpConv:
    """One TCP connection: frames with consistent sequence numbers in both directions."""

    def __init__(self, cip, cport, sip, sport, isn=1000, isn_s=5000):
        self.c, self.s = (cip, cport), (sip, sport)
        self.seq = [isn, isn_s]

    def seg(self, side, flags, payload=b""):
        src, dst = (self.c, self.s) if side == 0 else (self.s, self.c)
        fr = ipv4(src[0], dst[0], 6, tcp(src[1], dst[1], self.seq[side], self.seq[1 - side],
                                         flags, payload))
        self.seq[side] += len(payload) + (1 if flags & (SYN | FIN) else 0)
        return fr

    def handshake(self):
        return [self.seg(0, SYN), self.seg(1, SYN | ACK), self.seg(0, ACK)]

    def send(self, side, data, mss=1400):
        return [self.seg(side, ACK | PSH, data[i:i + mss]) for i in range(0, len(data), mss)]

    def close(self):
        return [self.seg(0, FIN | ACK), self.seg(1, FIN | ACK), self.seg(0, ACK)]


def syn(rng, dst_port=443, src_net=(198, 18, 200), dst_net=(198, 19)):
    """A SYN from a random host and port of src_net (/21 from its third octet) to dst_net/16."""
    src = bytes([src_net[0], src_net[1], src_net[2] + rng.randrange(8), rng.randrange(256)])
    dst = bytes([dst_net[0], dst_net[1], rng.randrange(256), rng.randrange(1, 255)])
    return ipv4(src, dst, 6, tcp(rng.randrange(1024, 65535), dst_port, rng.randrange(1 << 32), 0, SYN),
                ident=rng.randrange(65536))


# -- malformed L7 --------------------------------------------------------------------------


def truncated_tls(cip, cport, sip):
    """A TLS ClientHello whose record and handshake lengths promise 16 KB; 60 bytes follow,
    then the client closes."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    hs = b"\x01" + struct.pack("!I", 16000)[1:] + body
    rec = b"\x16\x03\x01" + struct.pack("!H", 16380) + hs
    c = TcpConv(cip, cport, sip, 443)
    return c.handshake() + c.send(0, rec) + [c.seg(1, ACK)] + c.close()


def huge_http_headers(cip, cport, sip, headers=64, size=1000):
    """A GET with `headers` headers of `size` bytes each (64 KB), over many segments."""
    req = b"GET /index.html HTTP/1.1\r\nHost: huge.example\r\n"
    for i in range(headers):
        req += b"X-Pad-%d: " % i + b"a" * size + b"\r\n"
    req += b"\r\n"
    c = TcpConv(cip, cport, sip, 80)
    return c.handshake() + c.send(0, req) + c.send(1, b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n") + c.close()


def dns_compression_loop(cip, cport, sip, ident=0x1234):
    """A DNS query whose name is a compression pointer to itself, and an answer whose
    records point at each other."""
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    # Answer: question name "a" then a pointer to offset 14 (the pointer itself); the answer
    # record's name points at 14 too.
    a = (struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + b"\x01a\xc0\x0e" + struct.pack("!HH", 1, 1)
         + b"\xc0\x0e" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([198, 19, 0, 53]))
    return [ipv4(cip, sip, 17, udp(cport, 53, q)), ipv4(sip, cip, 17, udp(53, cport, a))]


# -- fragments -------------------------------------------------------------------------------


def tcp_fragments(cip, cport, sip, sport, ident, payload, first_len, overlap=0):
    """A TCP segment (header + payload) cut into IPv4 fragments: the first carries first_len
    bytes of it (a multiple of 8), the rest follow in 64-byte pieces, each starting `overlap`
    bytes before the previous one ended (a multiple of 8)."""
    seg = tcp(cport, sport, 1, 1, ACK | PSH, payload)
    frames = [ipv4(cip, sip, 6, seg[:first_len], ident=ident, frag_off=0, more=True)]
    off = first_len
    while off < len(seg):
        start = off - overlap if overlap and off > overlap else off
        piece = seg[start:start + 64]
        frames.append(ipv4(cip, sip, 6, piece, ident=ident, frag_off=start,
                           more=start + len(piece) < len(seg)))
        off = start + len(piece)
    return frames


def ipv6_ext_chain(n, src_last=1, sport=5000):
    """An IPv6 UDP datagram behind n destination-options headers (8 bytes each)."""
    payload = udp(sport, 9999, b"x" * 16)
    ext = b""
    for i in range(n):
        nxt = 60 if i + 1 < n else 17
        ext += bytes([nxt, 0]) + bytes(6)
    first = 60 if n else 17
    src = bytes.fromhex("20010db8000000000000000000000000")[:15] + bytes([src_last])
    dst = bytes.fromhex("20010db8000100000000000000000080")
    hdr = struct.pack("!IHBB", 6 << 28, len(ext) + len(payload), first, 64) + src + dst
    return eth(hdr + ext + payload, 0x86DD)


# -- tunnels (issue 20) --------------------------------------------------------------------


def tunnel_frames():
    """One frame per encapsulation l7gate looks into (each carrying a TCP SYN from 10.0.0.1 to
    10.1.0.1:443), plus truncated and garbled variants: the parser's fuzz seeds."""
    inner = ipv4("10.0.0.1", "10.1.0.1", 6, tcp(40000, 443, 1, 0, SYN))[14:]
    inner6 = (struct.pack("!IHBB", 0x60000000, 20, 6, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x02"
              + tcp(40000, 443, 1, 0, SYN))
    in_eth = ETH + b"\x08\x00" + inner
    capwap = bytes([0, 0x10, 0x42, 0x20, 0, 0, 0, 0]) + bytes(24) + bytes([0xAA, 0xAA, 3, 0, 0, 0, 8, 0]) + inner
    frames = [
        ipv4("192.0.2.1", "192.0.2.2", 4, inner),                                    # IPv4 in IPv4
        ipv4("192.0.2.1", "192.0.2.2", 41, inner6),                                  # IPv6 in IPv4
        ipv4("192.0.2.1", "192.0.2.2", 47, struct.pack("!HH", 0, 0x0800) + inner),   # GRE
        ipv4("192.0.2.1", "192.0.2.2", 47, struct.pack("!HHII", 0xA000, 0x6558, 0, 7) + in_eth),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(49152, 4789, struct.pack("!II", 0x08000000, 42 << 8) + in_eth)),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(2152, 2152, struct.pack("!BBHI", 0x30, 0xFF, len(inner), 9) + inner)),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(2152, 2152, struct.pack("!BBHIHBB", 0x34, 0xFF, 8 + len(inner), 9, 0, 0, 0x85)
                                                 + b"\x01\x00\x01\x00" + inner)),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(12380, 5247, capwap)),
        eth(struct.pack("!BBHHH", 0x11, 0, 1, len(inner) + 2, 0x0021) + inner, 0x8864),   # PPPoE
        eth(struct.pack("!II", 16 << 12 | 64, 17 << 12 | 0x100 | 64) + inner, 0x8847),     # MPLS
        # Three IP-in-IP layers (one more than l7gate looks into), GRE version 1, a cut GTP-U
        # extension chain, a VXLAN header without its I flag.
        ipv4("192.0.2.1", "192.0.2.2", 4, ipv4("192.0.2.3", "192.0.2.4", 4, ipv4("192.0.2.5", "192.0.2.6", 4, inner)[14:])[14:]),
        ipv4("192.0.2.1", "192.0.2.2", 47, struct.pack("!HHHH", 0x3001, 0x880B, 0, 1) + bytes(8)),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(2152, 2152, struct.pack("!BBHIHBB", 0x34, 0xFF, 8, 9, 0, 0, 0x85) + b"\x09")),
        ipv4("192.0.2.1", "192.0.2.2", 17, udp(49152, 4789, bytes(8) + in_eth)),
    ]
    return frames + [f[:len(f) - 30] for f in frames[:10]]
