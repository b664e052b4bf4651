#!/usr/bin/python3
"""Deterministic benchmark traffic for l7gate (perf/run.sh, perf/callgrind.sh).

    /usr/bin/python3 tools/gen_perf_traffic.py OUTDIR [--mix established|attack|all]
                                               [--flows N] [--syn-ratio R]

Every run writes the same bytes (fixed seeds, fixed timestamps from 1700000000.0 in 10 us
steps) for a given tools/gen_traffic.py, whose conversation builders (TCP with consistent
seq/ack, TLS 1.2/1.3 handshakes, HTTP, QUIC Initial packets with real RFC 9001 protection,
SSH, DNS, ICMP, BitTorrent) this script reuses: the same fixtures drive the tests and perf.
Addresses are only from 198.18.0.0/15 and 2001:db8::/32.

Mixes:
  established  established.pcap: --flows (10,000) complete conversations of common
               protocols (TLS 1.3 and 1.2, HTTP, QUIC, DNS, SSH, ICMP, BitTorrent; 10% of
               the flows over IPv6) with IMIX-like sizes (about 13.5 packets per flow, about
               500 bytes per frame). Flows start at staggered times and overlap, as on a
               link; each flow keeps its packet order, both directions in one file.
  attack       attack.pcap: established.pcap interleaved 1:1 (by default) with a SYN
               flood: TCP SYNs from random sources in 198.18.0.0/15 and random source ports
               towards 16 servers in 198.19.200.0/24 (ports 80/443), 60-byte frames, every
               SYN a new 5-tuple.

  newflow      newflow.pcap: --flows short flows, each new and over soon: a TCP handshake,
               a TLS ClientHello with SNI, the server's answer, a few data packets and the
               FIN exchange (55%); a DNS query and answer (30%); a QUIC Initial exchange
               (15%); 10% over IPv6. Replayed with l7gate's --bench-fresh-flows, every pass
               is new flows: the steady state of flow setup and classification.
  onepass      onepass.pcap: --flows new flows of the newflow mix's templates, for reading
               once from the file (perf/run.sh --peers suricata). Built from at most 10,000
               flows generated as for newflow, repeated with the addresses rewritten (the
               third octet of both IPv4 addresses XORed with 8 x the copy's index, byte 5 of
               both IPv6 addresses with the index; still in 198.18.0.0/15 and 2001:db8::/32;
               checksums updated), each copy after the previous one: every flow of the file is
               new, and 200,000 flows take seconds instead of a quarter of an hour.
  syn          syn.pcap: the attack mix's SYNs alone (as many as established.pcap has
               packets): every packet a new flow, the cost of flow creation.
  real         real.pcap, with --real-capture FILE (a classic pcap, e.g. the shared
               mix-shared.pcap): the capture minus its frames longer than --max-frame (2048,
               the data room of one default DPDK mbuf: net_pcap's infinite_rx mode cannot
               preload a frame that needs two mbufs). Timestamps and order are kept; how many
               frames were left out is recorded in real.json.

Each mix also gets MIX.json: packets, bytes, average frame size, flows, size histogram,
packets per protocol family, and the capture's sha256.
"""

import argparse
import hashlib
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_traffic as gt  # noqa: E402  (scapy is imported there, logging quietened)
from scapy.all import ICMP, TCP, UDP  # noqa: E402

BASE_TIME_NS = 1700000000 * 10**9
STEP_NS = 10_000  # 10 us between consecutive frames

# SNIs / Host names: common services, so nDPI's host matching does real work. These are only
# strings inside a synthetic capture; every address in it is a test address.
HOSTS = [
    "www.google.com", "www.youtube.com", "i.ytimg.com", "www.facebook.com", "graph.facebook.com",
    "www.instagram.com", "web.whatsapp.com", "www.netflix.com", "api.twitter.com",
    "www.wikipedia.org", "www.amazon.com", "outlook.office365.com", "teams.microsoft.com",
    "login.microsoftonline.com", "www.linkedin.com", "github.com", "slack.com", "zoom.us",
    "www.dropbox.com", "www.apple.com", "open.spotify.com", "www.tiktok.com", "www.reddit.com",
    "cdn.jsdelivr.net", "fonts.gstatic.com", "static.example.net", "www.example.com",
    "api.example.org", "shop.example.com", "news.example.net",
]
CLIENTS_V4 = 2000
CLIENTS_V6 = 200
SERVERS_V4 = 500
SERVERS_V6 = 50

# Flow templates: (name, weight in flows). Tuned for ~13.5 packets/flow and ~500 B/frame.
TEMPLATES = [
    ("tls13", 41),
    ("tls12", 4),
    ("http", 11),
    ("quic", 10),
    ("dns", 21),
    ("ssh", 3),
    ("icmp", 6),
    ("bittorrent", 4),
]


def _server_ip(rng, v6):
    if v6:
        return "2001:db8:200::%x" % (1 + rng.randrange(SERVERS_V6))
    n = rng.randrange(SERVERS_V4)
    return "198.19.%d.%d" % (n // 250, 1 + n % 250)


class PortAllocator:
    """Unique (client address, client port) per flow, deterministic."""

    def __init__(self):
        self.next = {}

    def take(self, cip):
        p = self.next.get(cip, 32768)
        self.next[cip] = p + 1
        return p


def tls13_bulk(ep, cport, rng, sni, resp, sport=443):
    """TLS 1.3 handshake, one request, a response of `resp` bytes in 16 KiB records, close."""
    c = gt.TcpConv(ep, cport, sport, rng).handshake()
    ch = gt.tls_client_hello(rng, sni, tls13=True)
    sid = ch[4 + 2 + 32 + 1:4 + 2 + 32 + 1 + 32]
    c.send(0, gt.tls_record(22, ch, 0x0301))
    c.send(1, gt.tls_record(22, gt.tls_server_hello(rng, 0x1301, True, sid)) +
           gt.tls_record(20, b"\x01") + gt.tls_record(23, rng.randbytes(2400)) +
           gt.tls_record(23, rng.randbytes(280)), ack=False)
    c.send(0, gt.tls_record(20, b"\x01") + gt.tls_record(23, rng.randbytes(53)), ack=False)
    c.send(0, gt.tls_record(23, rng.randbytes(rng.randrange(120, 700))), ack=False)
    body = b"".join(gt.tls_record(23, rng.randbytes(min(16384, resp - o)))
                    for o in range(0, resp, 16384))
    c.send(1, body)
    return c.close()


def http_bulk(ep, cport, rng, host, resp, sport=80):
    path = "/%s/%d.%s" % (rng.choice(["img", "static", "api", "assets", "v1"]), rng.randrange(10**6),
                          rng.choice(["jpg", "js", "css", "json", "html"]))
    req = gt.http_get(host, path, gt.FIREFOX_UA)
    body = rng.randbytes(resp)
    return gt.http_conv(ep, cport, rng, req, "200 OK", "application/octet-stream", body, sport)


def build_flow(kind, ep, cport, rng):
    host = rng.choice(HOSTS)
    if kind == "tls13":
        # Response sizes: mostly small objects, some large ones (heavy tail).
        resp = int(min(60000, rng.lognormvariate(8.1, 1.2)))
        return tls13_bulk(ep, cport, rng, host, max(200, resp))
    if kind == "tls12":
        return gt.tls12_conv(ep, cport, rng, host)
    if kind == "http":
        resp = int(min(60000, rng.lognormvariate(8.5, 1.0)))
        return http_bulk(ep, cport, rng, host, max(300, resp))
    if kind == "quic":
        return gt.quic_conv(ep, cport, rng, host)
    if kind == "dns":
        if ep.v6:
            return gt.udp_dns(ep, cport, rng, host)
        answers = ["198.19.%d.%d" % (rng.randrange(256), rng.randrange(1, 255))
                   for _ in range(1 + rng.randrange(3))]
        return gt.dns_exchange(ep, cport, rng, host, answers)
    if kind == "ssh":
        return gt.ssh_conv(ep, cport, rng)
    if kind == "icmp":
        return gt.icmp_echo(ep, rng, rng.randrange(1 << 16), 1 + rng.randrange(4))
    if kind == "bittorrent":
        return gt.bittorrent_conv(ep, cport, rng)
    raise ValueError(kind)


NEWFLOW_TEMPLATES = [
    ("tls_short", 55),
    ("dns", 30),
    ("quic", 15),
]


def tls_short(ep, cport, rng, sni, sport=443):
    """Handshake, ClientHello with SNI, the server's flight, a request and its answer, FIN."""
    c = gt.TcpConv(ep, cport, sport, rng).handshake()
    ch = gt.tls_client_hello(rng, sni, tls13=True)
    sid = ch[4 + 2 + 32 + 1:4 + 2 + 32 + 1 + 32]
    c.send(0, gt.tls_record(22, ch, 0x0301))
    c.send(1, gt.tls_record(22, gt.tls_server_hello(rng, 0x1301, True, sid)) +
           gt.tls_record(20, b"\x01") + gt.tls_record(23, rng.randbytes(rng.randrange(900, 1300))),
           ack=False)
    c.send(0, gt.tls_record(20, b"\x01") + gt.tls_record(23, rng.randbytes(53)) +
           gt.tls_record(23, rng.randbytes(rng.randrange(120, 400))), ack=False)
    c.send(1, gt.tls_record(23, rng.randbytes(rng.randrange(200, 1200))))
    return c.close()


def build_newflow(kind, ep, cport, rng):
    host = rng.choice(HOSTS)
    if kind == "tls_short":
        return tls_short(ep, cport, rng, host)
    return build_flow(kind, ep, cport, rng)


def family(pkt):
    if TCP in pkt:
        return "tcp"
    if UDP in pkt:
        return "udp"
    if ICMP in pkt:
        return "icmp"
    return "icmpv6"


def gen_established(nflows, seed=0x9E7F, templates=TEMPLATES, build=build_flow, longest=0.2):
    """Returns (frames as bytes in capture order, stats dict). A flow lasts between 0.1% and
    `longest` of the capture."""
    rng = random.Random(seed)
    kinds = [k for k, _ in templates]
    weights = [w for _, w in templates]
    ports = PortAllocator()
    placed = []  # (position, flow, index, frame)
    per_kind = {k: 0 for k in kinds}
    fam = {}
    for f in range(nflows):
        kind = rng.choices(kinds, weights)[0]
        v6 = rng.random() < 0.10
        if v6:
            cip = "2001:db8:100::%x" % (1 + rng.randrange(CLIENTS_V6))
        else:
            n = rng.randrange(CLIENTS_V4)
            cip = "198.18.%d.%d" % (n // 250, 1 + n % 250)
        ep = gt.Endpoints(gt.client_mac(rng.randrange(200)), gt.ROUTER_MAC, cip, _server_ip(rng, v6))
        # Each flow has its own generator: changing one flow leaves the others' bytes alone.
        frng = random.Random("perf/%d/%d" % (seed, f))
        conv = build(kind, ep, ports.take(cip), frng)
        per_kind[kind] += 1
        # Staggered start, a flow lasts between 0.1% and `longest` of the capture.
        start = rng.random()
        span = rng.uniform(0.001, longest)
        k = len(conv)
        for j, (_, pkt) in enumerate(conv):
            placed.append((start + span * j / k, f, j, bytes(pkt)))
            fam[family(pkt)] = fam.get(family(pkt), 0) + 1
    placed.sort(key=lambda t: (t[0], t[1], t[2]))
    frames = [t[3] for t in placed]
    stats = {"flows": nflows, "flows_per_template": per_kind, "packets_per_family": fam}
    return frames, stats


def _csum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_frames(n, seed=0x5F1D):
    """n TCP SYNs, each a new 5-tuple: random source in 198.18.0.0/15, random source port."""
    rng = random.Random(seed)
    eth = bytes.fromhex("02000000ff01" "020000000bad" "0800")
    seen = set()
    out = []
    while len(out) < n:
        src = (198 << 24) | (18 << 16) | rng.randrange(1 << 17)  # 198.18.0.0/15
        dst = (198 << 24) | (19 << 16) | (200 << 8) | (1 + rng.randrange(16))
        sport = 1024 + rng.randrange(64512)
        dport = rng.choice((80, 443))
        if (src, dst, sport, dport) in seen:
            continue
        seen.add((src, dst, sport, dport))
        tcp = struct.pack("!HHIIBBHHH", sport, dport, rng.randrange(1 << 32), 0, 5 << 4, 0x02,
                          1024, 0, 0)
        pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), rng.randrange(1 << 16), 0, 64, 6,
                         0, src, dst)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        out.append(eth + ip + tcp + b"\x00" * 6)  # padded to the 60-byte minimum
    return out


def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _csum_update(csum, old, new):
    """RFC 1624: a 16-bit one's complement checksum after one 16-bit word went old -> new."""
    return ~_fold((~csum & 0xFFFF) + (~old & 0xFFFF) + new) & 0xFFFF


def readdress(frame, copy):
    """The frame with both addresses moved into copy `copy` (see onepass in the docstring):
    the IPv4 header checksum and the TCP/UDP/ICMPv6 checksum (their pseudo-header holds the
    addresses) updated in place. Frames that are not plain Ethernet IPv4/IPv6 are returned
    as they are."""
    if copy == 0:
        return frame
    f = bytearray(frame)
    et = struct.unpack_from("!H", f, 12)[0]
    if et == 0x0800:
        ihl = (f[14] & 0x0F) * 4
        proto = f[23]
        words = (14 + 14, 14 + 18)  # low 16-bit words of the source and destination
        delta = (copy * 8) << 8     # the third octet
        l4 = 14 + ihl
        hc_off = 14 + 10
    elif et == 0x86DD:
        proto = f[20]
        words = (14 + 8 + 4, 14 + 24 + 4)  # bytes 4-5 of each address
        delta = copy                        # byte 5
        l4 = 14 + 40
        hc_off = None
    else:
        return frame
    if proto == 6:
        l4c = l4 + 16
    elif proto == 17:
        l4c = l4 + 6
    elif proto == 58:
        l4c = l4 + 2
    else:
        l4c = None
    for off in words:
        old = struct.unpack_from("!H", f, off)[0]
        new = old ^ delta
        struct.pack_into("!H", f, off, new)
        if hc_off is not None:
            struct.pack_into("!H", f, hc_off, _csum_update(struct.unpack_from("!H", f, hc_off)[0], old, new))
        if l4c is not None and l4c + 2 <= len(f):
            c = struct.unpack_from("!H", f, l4c)[0]
            if not (proto == 17 and et == 0x0800 and c == 0):  # IPv4 UDP without checksum
                struct.pack_into("!H", f, l4c, _csum_update(c, old, new))
    return bytes(f)


def gen_onepass(nflows, base_max=10000):
    copies = (nflows + base_max - 1) // base_max
    if copies > 32:
        raise SystemExit("onepass: at most %d flows" % (32 * base_max))
    base = nflows // copies
    frames, stats = gen_established(base, seed=0x4E57, templates=NEWFLOW_TEMPLATES,
                                    build=build_newflow, longest=0.01)
    out = []
    for c in range(copies):
        out.extend(readdress(fr, c) for fr in frames)
    stats = dict(stats, flows=base * copies, copies=copies, base_flows=base,
                 flows_per_template={k: v * copies for k, v in stats["flows_per_template"].items()},
                 packets_per_family={k: v * copies for k, v in stats["packets_per_family"].items()})
    return out, stats


def write_pcap(path, frames):
    """Classic pcap, microsecond timestamps, fixed times; written directly (fast)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, d in enumerate(frames):
            t = BASE_TIME_NS + i * STEP_NS
            f.write(struct.pack("<IIII", t // 10**9, (t % 10**9) // 1000, len(d), len(d)))
            f.write(d)
    os.replace(tmp, path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_pcap(path):
    """Frames of a classic pcap (either byte order, us or ns timestamps) as (sec, frac, bytes)."""
    with open(path, "rb") as f:
        gh = f.read(24)
        magic = struct.unpack("<I", gh[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            end = ">"
        else:
            raise SystemExit("%s: not a classic pcap file (pcapng is not supported here)" % path)
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        linktype = struct.unpack(end + "I", gh[20:24])[0]
        if linktype != 1:
            raise SystemExit("%s: link type %d, only Ethernet (1) is supported" % (path, linktype))
        out = []
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, frac, incl, _ = struct.unpack(end + "IIII", h)
            out.append((sec, frac // 1000 if nano else frac, f.read(incl)))
    return out


def gen_real(outdir, src, max_frame):
    recs = read_pcap(src)
    kept = [r for r in recs if len(r[2]) <= max_frame]
    path = os.path.join(outdir, "real.pcap")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, d in kept:
            f.write(struct.pack("<IIII", sec, usec, len(d), len(d)))
            f.write(d)
    os.replace(tmp, path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    with open(src, "rb") as f:
        src_digest = hashlib.sha256(f.read()).hexdigest()
    frames = [r[2] for r in kept]
    gt.write_json(os.path.join(outdir, "real.json"),
                  summary(frames, dict(mix="real", source=os.path.basename(src),
                                       source_sha256=src_digest, source_packets=len(recs),
                                       left_out_over_max_frame=len(recs) - len(kept),
                                       max_frame=max_frame, sha256=h.hexdigest(),
                                       generator="tools/gen_perf_traffic.py --mix real")))


def summary(frames, extra):
    sizes = [len(d) for d in frames]
    buckets = [(0, 64), (65, 127), (128, 255), (256, 511), (512, 1023), (1024, 1518), (1519, 65535)]
    hist = {"%d-%d" % b: sum(1 for s in sizes if b[0] <= s <= b[1]) for b in buckets}
    out = {
        "packets": len(frames),
        "bytes": sum(sizes),
        "avg_frame_bytes": round(sum(sizes) / len(sizes), 1),
        "size_histogram": hist,
        "generator": "tools/gen_perf_traffic.py",
    }
    out.update(extra)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--mix", choices=["established", "attack", "syn", "newflow", "onepass", "real", "all"],
                    default="all",
                    help="all = established, attack, syn and newflow (and real when --real-capture is given)")
    ap.add_argument("--real-capture", help="classic pcap to derive real.pcap from")
    ap.add_argument("--max-frame", type=int, default=2048,
                    help="real: leave out frames longer than this (default 2048)")
    ap.add_argument("--flows", type=int, default=10000, help="established flows (default 10000)")
    ap.add_argument("--syn-ratio", type=float, default=1.0,
                    help="attack: SYNs per established packet (default 1.0, i.e. 50/50)")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    if args.mix == "real" and not args.real_capture:
        ap.error("--mix real needs --real-capture FILE")
    if args.real_capture and args.mix in ("real", "all"):
        gen_real(args.outdir, args.real_capture, args.max_frame)
    if args.mix == "real":
        return 0
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise SystemExit("gen_perf_traffic.py needs python3-cryptography (apt-get install "
                         "python3-cryptography)")
    if args.mix == "onepass":
        op, ostats = gen_onepass(args.flows)
        digest = write_pcap(os.path.join(args.outdir, "onepass.pcap"), op)
        gt.write_json(os.path.join(args.outdir, "onepass.json"),
                      summary(op, dict(ostats, sha256=digest, mix="onepass")))
        return 0
    if args.mix in ("newflow", "all"):
        nf, nstats = gen_established(args.flows, seed=0x4E57, templates=NEWFLOW_TEMPLATES,
                                     build=build_newflow, longest=0.01)
        digest = write_pcap(os.path.join(args.outdir, "newflow.pcap"), nf)
        gt.write_json(os.path.join(args.outdir, "newflow.json"),
                      summary(nf, dict(nstats, sha256=digest, mix="newflow")))
    if args.mix == "newflow":
        return 0
    frames, stats = gen_established(args.flows)
    if args.mix in ("established", "all"):
        path = os.path.join(args.outdir, "established.pcap")
        digest = write_pcap(path, frames)
        gt.write_json(os.path.join(args.outdir, "established.json"),
                      summary(frames, dict(stats, sha256=digest, mix="established")))
    if args.mix in ("syn", "all"):
        syns = syn_frames(len(frames))
        digest = write_pcap(os.path.join(args.outdir, "syn.pcap"), syns)
        gt.write_json(os.path.join(args.outdir, "syn.json"),
                      summary(syns, dict(flows=len(syns), syn_packets=len(syns), sha256=digest,
                                         packets_per_family={"tcp": len(syns)}, mix="syn")))
    if args.mix in ("attack", "all"):
        nsyn = int(len(frames) * args.syn_ratio)
        syns = syn_frames(nsyn)
        mixed = []
        # Even spread: after each established frame, the SYNs due by then.
        acc = 0.0
        si = 0
        for d in frames:
            mixed.append(d)
            acc += args.syn_ratio
            while acc >= 1.0 and si < nsyn:
                mixed.append(syns[si])
                si += 1
                acc -= 1.0
        mixed.extend(syns[si:])
        path = os.path.join(args.outdir, "attack.pcap")
        digest = write_pcap(path, mixed)
        gt.write_json(os.path.join(args.outdir, "attack.json"),
                      summary(mixed, dict(stats, flows=args.flows + nsyn, syn_packets=nsyn,
                                          packets_per_family=dict(
                                              stats["packets_per_family"],
                                              tcp=stats["packets_per_family"].get("tcp", 0) + nsyn),
                                          established_packets=len(frames), sha256=digest,
                                          mix="attack")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
