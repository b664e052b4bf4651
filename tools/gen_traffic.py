#!/usr/bin/python3
"""Deterministic test traffic for l7gate.

    /usr/bin/python3 tools/gen_traffic.py OUTDIR [--set bridge|malformed|flows|all]

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
    """GRE (IP protocol 47) carrying IPv4 in both directions: keyed by protocol, ports 0."""
    out = []
    for i in range(count):
        for side in (0, 1):
            inner = IP(src="198.18.200.%d" % (1 + side), dst="198.18.201.%d" % (1 + side)) / \
                UDP(sport=1000 + i, dport=2000) / Raw(load=b"gre-inner")
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


SETS = {"bridge": gen_bridge, "malformed": gen_malformed, "flows": gen_flows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--set", choices=sorted(SETS) + ["all"], default="all")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    for name, fn in SETS.items():
        if args.set in (name, "all"):
            fn(args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
