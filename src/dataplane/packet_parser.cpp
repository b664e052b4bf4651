#include "dataplane/packet_parser.hpp"

#include <cstring>

namespace l7gate::dp {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88a8;
constexpr uint16_t kEthQinQOld = 0x9100;
constexpr uint16_t kEthPppoe = 0x8864;    // PPPoE session stage
constexpr uint16_t kEthMpls = 0x8847;
constexpr uint16_t kEthMplsMc = 0x8848;
constexpr uint16_t kEthTeb = 0x6558;      // GRE: transparent Ethernet bridging

constexpr uint8_t kProtoIpip = 4;
constexpr uint8_t kProtoIpv6 = 41;
constexpr uint8_t kProtoGre = 47;
constexpr uint16_t kPortVxlan = 4789;
constexpr uint16_t kPortGtpU = 2152;
constexpr uint16_t kPortCapwapData = 5247;

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoDstOpts = 60;

inline uint16_t rd16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) noexcept {
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

inline void malformed(PacketMeta& m, DropReason r) noexcept {
    m.kind = PacketKind::Malformed;
    m.error = r;
}

// Parses the L4 header at data[off, end). Returns false (and marks meta) on error.
[[gnu::always_inline]] inline bool parse_l4(const uint8_t* data, uint32_t off, uint32_t end, PacketMeta& m, uint16_t& sport,
              uint16_t& dport) noexcept {
    const uint32_t avail = end - off;
    switch (m.l4_proto) {
    case kProtoTcp: {
        if (avail < 20) {
            malformed(m, DropReason::TcpTruncated);
            return false;
        }
        const uint32_t doff = (data[off + 12] >> 4) * 4u;
        if (doff < 20 || doff > avail) {
            malformed(m, DropReason::TcpBadOffset);
            return false;
        }
        sport = rd16(data + off);
        dport = rd16(data + off + 2);
        m.tcp_seq = rd32(data + off + 4);
        m.tcp_ack = rd32(data + off + 8);
        m.tcp_flags = data[off + 13];
        m.l4_offset = static_cast<uint16_t>(off);
        m.payload_offset = static_cast<uint16_t>(off + doff);
        m.payload_length = static_cast<uint16_t>(avail - doff);
        return true;
    }
    case kProtoUdp: {
        if (avail < 8) {
            malformed(m, DropReason::UdpTruncated);
            return false;
        }
        const uint32_t ulen = rd16(data + off + 4);
        // A fragmented datagram's UDP length covers every fragment, not only this one.
        if (ulen < 8 || (!m.is_fragment && ulen > avail)) {
            malformed(m, DropReason::UdpBadLength);
            return false;
        }
        sport = rd16(data + off);
        dport = rd16(data + off + 2);
        m.l4_offset = static_cast<uint16_t>(off);
        m.payload_offset = static_cast<uint16_t>(off + 8);
        m.payload_length = static_cast<uint16_t>((ulen > avail ? avail : ulen) - 8);
        return true;
    }
    case kProtoIcmp:
    case kProtoIcmpv6:
        if (avail < 4) {
            malformed(m, DropReason::IcmpTruncated);
            return false;
        }
        m.l4_offset = static_cast<uint16_t>(off);
        m.payload_offset = static_cast<uint16_t>(off + 4);
        m.payload_length = static_cast<uint16_t>(avail - 4);
        return true;
    default:
        // Other IP protocols are keyed by number only; their payload starts at the L4 offset.
        m.l4_offset = static_cast<uint16_t>(off);
        m.payload_offset = static_cast<uint16_t>(off);
        m.payload_length = static_cast<uint16_t>(avail);
        return true;
    }
}

void decap_ip(const uint8_t* data, PacketMeta& m, uint32_t l3, uint8_t version) noexcept;

// Whether the packet may carry a tunnel: plain TCP pays one compare, plain UDP a few more,
// and only candidates go out of line.
// The ports are the key's (either order): only the protocol and the key stay live after the
// key is made, and decap_ip reads the carrier's ports again from the packet.
[[gnu::always_inline]] inline bool tunnel_candidate(uint8_t proto, const uint16_t (&port)[2]) noexcept {
    if (proto == kProtoUdp) {
        const auto tunnel_port = [](uint16_t p) { return p == kPortVxlan || p == kPortGtpU || p == kPortCapwapData; };
        return tunnel_port(port[0]) || tunnel_port(port[1]);
    }
    return proto == kProtoIpip || proto == kProtoIpv6 || proto == kProtoGre;
}

// Inlined into parse_packet for the carrier (kInner false), as before tunnels existed: a call
// there costs every plain IPv4 packet its register saves. parse_inner has its own copy.
template <bool kInner>
[[gnu::always_inline]] inline void parse_ipv4(const uint8_t* data, uint32_t off, uint32_t len, PacketMeta& m) noexcept {
    const uint32_t avail = len - off;
    if (avail < 20) {
        malformed(m, DropReason::Ipv4Truncated);
        return;
    }
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 4) {
        malformed(m, DropReason::Ipv4BadVersion);
        return;
    }
    const uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20 || ihl > avail) {
        malformed(m, DropReason::Ipv4BadIhl);
        return;
    }
    const uint32_t tot = rd16(ip + 2);
    if (tot < ihl || tot > avail) {
        malformed(m, DropReason::Ipv4BadLength);
        return;
    }
    m.ip_version = 4;
    m.l3_length = static_cast<uint16_t>(tot);
    m.l4_proto = ip[9];
    const uint16_t frag = rd16(ip + 6);
    const uint32_t frag_off = (frag & 0x1fffu) * 8u;
    const bool more = (frag & 0x2000u) != 0;
    if (more || frag_off != 0) {
        if (frag_off + (tot - ihl) > 65535u) {
            malformed(m, DropReason::Ipv4BadFragment);
            return;
        }
        m.is_fragment = 1;
        m.first_fragment = frag_off == 0;
        m.frag_id = rd16(ip + 4);
    }
    uint16_t sport = 0;
    uint16_t dport = 0;
    if (!m.is_fragment || m.first_fragment) {
        if (!parse_l4(data, off + ihl, off + tot, m, sport, dport)) {
            return;
        }
    }
    m.reversed = make_flow_key(m.key, 4, m.l4_proto, m.key.vlan, ip + 12, ip + 16, sport, dport);
    m.kind = PacketKind::Ip;
    if (m.l4_proto == kProtoTcp) [[likely]] {
        return;  // TCP carries no tunnel l7gate looks into: one compare
    }
    if (tunnel_candidate(m.l4_proto, m.key.port)) [[unlikely]] {
        decap_ip(data, m, off, 4);
    }
}

// Out of line: IPv6 needs more registers than IPv4, and inlined it would make every packet
// save and restore them on entry to parse_packet.
[[gnu::noinline]] void parse_ipv6(const uint8_t* data, uint32_t off, uint32_t len, PacketMeta& m) noexcept {
    const uint32_t avail = len - off;
    if (avail < 40) {
        malformed(m, DropReason::Ipv6Truncated);
        return;
    }
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 6) {
        malformed(m, DropReason::Ipv6BadVersion);
        return;
    }
    const uint32_t plen = rd16(ip + 4);
    if (40 + plen > avail) {
        malformed(m, DropReason::Ipv6BadLength);
        return;
    }
    const uint32_t end = off + 40 + plen;
    m.ip_version = 6;
    m.l3_length = static_cast<uint16_t>(40 + plen);
    uint8_t nh = ip[6];
    uint32_t pos = off + 40;
    for (unsigned n = 0;; ++n) {
        const bool ext = nh == kProtoHopByHop || nh == kProtoRouting || nh == kProtoFragment ||
                         nh == kProtoAh || nh == kProtoDstOpts;
        if (!ext) {
            break;
        }
        if (n == kMaxIpv6ExtHeaders) {
            malformed(m, DropReason::Ipv6ExtTooLong);
            return;
        }
        if (pos + 8 > end) {
            malformed(m, DropReason::Ipv6ExtTruncated);
            return;
        }
        uint32_t hlen;
        if (nh == kProtoFragment) {
            hlen = 8;
            const uint16_t fo = rd16(data + pos + 2);
            const uint32_t frag_off = (fo & 0xfff8u);
            m.is_fragment = 1;
            m.first_fragment = frag_off == 0;
            m.frag_id = rd32(data + pos + 4);
        } else if (nh == kProtoAh) {
            hlen = (data[pos + 1] + 2u) * 4u;
        } else {
            hlen = (data[pos + 1] + 1u) * 8u;
        }
        if (pos + hlen > end) {
            malformed(m, DropReason::Ipv6ExtTruncated);
            return;
        }
        nh = data[pos];
        pos += hlen;
    }
    m.l4_proto = nh;
    uint16_t sport = 0;
    uint16_t dport = 0;
    if ((!m.is_fragment || m.first_fragment) && nh != 59) {
        if (!parse_l4(data, pos, end, m, sport, dport)) {
            return;
        }
    }
    m.reversed = make_flow_key(m.key, 6, nh, m.key.vlan, ip + 8, ip + 24, sport, dport);
    m.kind = PacketKind::Ip;
    if (nh == kProtoTcp) [[likely]] {
        return;
    }
    if (tunnel_candidate(nh, m.key.port)) [[unlikely]] {
        decap_ip(data, m, off, 6);
    }
}

inline bool decap_wanted(const PacketMeta& m, Encap e) noexcept { return (m.no_decap >> static_cast<unsigned>(e) & 1u) == 0; }

inline void skip_tunnel(PacketMeta& m, TunSkip why, Encap e) noexcept {
    m.tun_skip = why;
    m.skip_encap = e;
}

// Parses the inner IP packet at data[off, end) (first nibble 4 or 6; anything else leaves the
// carrier's parse as it was, noted Garbled) as carried by `e`. The carrier's fields are
// replaced by the inner packet's; a malformed inner packet makes the frame malformed.
void parse_inner(const uint8_t* data, uint32_t off, uint32_t end, PacketMeta& m, Encap e, uint32_t id,
                 uint8_t outer_version, const uint8_t* src, const uint8_t* dst) noexcept {
    if (off >= end || ((data[off] >> 4) != 4 && (data[off] >> 4) != 6)) {
        skip_tunnel(m, TunSkip::Garbled, e);
        return;
    }
    const uint8_t alen = outer_version == 4 ? 4 : outer_version == 6 ? 16 : 0;
    std::memset(m.outer_src, 0, sizeof(m.outer_src));
    std::memset(m.outer_dst, 0, sizeof(m.outer_dst));
    if (alen != 0) {
        std::memcpy(m.outer_src, src, alen);
        std::memcpy(m.outer_dst, dst, alen);
    }
    m.outer_version = outer_version;
    m.tunnel_id = id;
    m.encap = e;
    ++m.encap_depth;
    m.kind = PacketKind::Malformed;
    m.reversed = 0;
    m.tcp_flags = 0;
    m.is_fragment = 0;
    m.first_fragment = 0;
    m.l4_offset = 0;
    m.payload_offset = 0;
    m.payload_length = 0;
    m.frag_id = 0;
    m.tcp_seq = 0;
    m.tcp_ack = 0;
    m.l3_offset = static_cast<uint16_t>(off);
    const uint32_t vlan = m.key.vlan & 0x00ffffffu;
    m.key.vlan = vlan;
    if ((data[off] >> 4) == 4) {
        m.ethertype = kEthIpv4;
        parse_ipv4<true>(data, off, end, m);
    } else {
        m.ethertype = kEthIpv6;
        parse_ipv6(data, off, end, m);
    }
    if (m.kind == PacketKind::Ip && m.encap == e) {
        // The innermost encapsulation is part of the key (a further layer sets its own).
        m.key.vlan = vlan | static_cast<uint32_t>(e) << 24;
    }
}

// An inner Ethernet frame (GRE 0x6558, VXLAN) at data[off, end): one VLAN tag skipped, then IP.
void parse_inner_eth(const uint8_t* data, uint32_t off, uint32_t end, PacketMeta& m, Encap e, uint32_t id,
                     uint8_t outer_version, const uint8_t* src, const uint8_t* dst) noexcept {
    if (off + 14 > end) {
        skip_tunnel(m, TunSkip::Garbled, e);
        return;
    }
    uint32_t o = off + 12;
    uint16_t et = rd16(data + o);
    if (et == kEthVlan && o + 6 <= end) {
        o += 4;
        et = rd16(data + o);
    }
    o += 2;
    if (et != kEthIpv4 && et != kEthIpv6) {
        skip_tunnel(m, TunSkip::Unsupported, e);  // ARP, ... inside the tunnel
        return;
    }
    parse_inner(data, o, end, m, e, id, outer_version, src, dst);
}

// The carrier parsed (m holds its key and offsets): looks into IP-in-IP, GRE and the UDP
// tunnels. Out of line and cold: only tunnel candidates get here.
// l3: the carrier's IP header; version: 4 or 6. The ports are the carrier's UDP header's (a
// UDP candidate has one: a later fragment has no ports and so is no candidate).
[[gnu::noinline, gnu::cold]] void decap_ip(const uint8_t* data, PacketMeta& m, uint32_t l3, uint8_t version) noexcept {
    const uint8_t* src = data + l3 + (version == 4 ? 12 : 8);
    const uint8_t* dst = data + l3 + (version == 4 ? 16 : 24);
    const bool ports = m.l4_proto == kProtoUdp && m.l4_offset != 0;
    const uint16_t sport = ports ? rd16(data + m.l4_offset) : 0;
    const uint16_t dport = ports ? rd16(data + m.l4_offset + 2) : 0;
    const uint8_t proto = m.l4_proto;
    Encap e;
    if (proto == kProtoIpip || proto == kProtoIpv6) {
        e = Encap::IpInIp;
    } else if (proto == kProtoGre) {
        e = Encap::Gre;
    } else if (dport == kPortVxlan) {
        e = Encap::Vxlan;
    } else if (dport == kPortGtpU || sport == kPortGtpU) {
        e = Encap::GtpU;
    } else if (dport == kPortCapwapData || sport == kPortCapwapData) {
        e = Encap::Capwap;
    } else {
        return;  // a candidate by the key's ports only (e.g. a VXLAN port as the source): plain UDP
    }
    if (m.is_fragment) {
        skip_tunnel(m, TunSkip::OuterFragment, e);  // a first fragment (later ones carry no ports)
        return;
    }
    if (!decap_wanted(m, e)) {
        skip_tunnel(m, TunSkip::Unsupported, e);
        return;
    }
    if (m.encap_depth >= kMaxEncapDepth) {
        skip_tunnel(m, TunSkip::TooDeep, e);
        return;
    }
    const uint8_t ver = m.ip_version;
    const uint32_t off = m.payload_offset;
    const uint32_t end = off + m.payload_length;
    const uint8_t* p = data + off;
    const uint32_t avail = end - off;
    switch (e) {
    case Encap::IpInIp:
        parse_inner(data, off, end, m, e, 0, ver, src, dst);
        return;
    case Encap::Gre: {
        if (avail < 4) {
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        const uint16_t flags = rd16(p);
        if ((flags & 0x0007u) != 0 || (flags & 0x4000u) != 0) {
            skip_tunnel(m, TunSkip::Unsupported, e);  // version 1 (PPTP), source routing
            return;
        }
        uint32_t h = 4;
        if ((flags & 0x8000u) != 0) {
            h += 4;  // checksum, reserved1
        }
        uint32_t key = 0;
        if ((flags & 0x2000u) != 0) {
            if (h + 4 > avail) {
                skip_tunnel(m, TunSkip::Garbled, e);
                return;
            }
            key = rd32(p + h);
            h += 4;
        }
        if ((flags & 0x1000u) != 0) {
            h += 4;  // sequence number
        }
        if (h > avail) {
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        const uint16_t type = rd16(p + 2);
        if (type == kEthIpv4 || type == kEthIpv6) {
            parse_inner(data, off + h, end, m, e, key, ver, src, dst);
        } else if (type == kEthTeb) {
            parse_inner_eth(data, off + h, end, m, e, key, ver, src, dst);
        } else {
            skip_tunnel(m, TunSkip::Unsupported, e);
        }
        return;
    }
    case Encap::Vxlan:
        if (avail < 8 || (p[0] & 0x08u) == 0) {  // the I flag: a valid VNI
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        parse_inner_eth(data, off + 8, end, m, e, rd32(p + 4) >> 8, ver, src, dst);
        return;
    case Encap::GtpU: {
        // GTPv1-U (3GPP TS 29.281): version 1, PT 1; only T-PDUs (type 255) carry user packets,
        // the rest (echo, error indication, end marker) is the tunnel's own signalling.
        if (avail < 8 || (p[0] >> 5) != 1 || (p[0] & 0x10u) == 0) {
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        if (p[1] != 0xff) {
            return;
        }
        uint32_t h = 8;
        if ((p[0] & 0x07u) != 0) {  // E, S or PN: the sequence, N-PDU and next-extension fields
            if (avail < 12) {
                skip_tunnel(m, TunSkip::Garbled, e);
                return;
            }
            uint8_t next = (p[0] & 0x04u) != 0 ? p[11] : 0;
            h = 12;
            for (unsigned n = 0; next != 0; ++n) {
                if (n == 8 || h >= avail || p[h] == 0 || h + p[h] * 4u > avail) {
                    skip_tunnel(m, TunSkip::Garbled, e);
                    return;
                }
                const uint32_t elen = p[h] * 4u;
                next = p[h + elen - 1];
                h += elen;
            }
        }
        parse_inner(data, off + h, end, m, e, rd32(p + 4), ver, src, dst);
        return;
    }
    default: {
        // CAPWAP data (RFC 5415) as ndpiReader 4.2 reads it: the CAPWAP header (HLEN, in 4-byte
        // words), a 24-byte IEEE 802.11 data header and an 8-byte LLC/SNAP header whose last
        // two bytes are the EtherType. Other data-channel packets (keep-alives, 802.3 frames)
        // stay the carrier's.
        if (avail < 8) {
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        const uint32_t h = ((p[1] >> 3) & 0x1fu) * 4u + 24 + 8;
        if ((p[0] & 0xf0u) != 0 || h >= avail) {
            return;
        }
        const uint16_t type = rd16(p + h - 2);
        if (type != kEthIpv4 && type != kEthIpv6) {
            return;
        }
        parse_inner(data, off + h, end, m, e, 0, ver, src, dst);
        return;
    }
    }
}

// PPPoE session and MPLS frames (the IP packet inside starts at or after data[off]).
[[gnu::noinline, gnu::cold]] void decap_l2(const uint8_t* data, uint32_t off, uint32_t len, PacketMeta& m,
                                           uint16_t et) noexcept {
    const Encap e = et == kEthPppoe ? Encap::Pppoe : Encap::Mpls;
    m.kind = PacketKind::NonIp;
    if (!decap_wanted(m, e)) {
        skip_tunnel(m, TunSkip::Unsupported, e);
        return;
    }
    uint32_t id;
    if (e == Encap::Pppoe) {
        // RFC 2516: version/type 0x11, code 0 (session data), session id, length, PPP protocol.
        if (off + 8 > len || data[off] != 0x11 || data[off + 1] != 0) {
            skip_tunnel(m, TunSkip::Garbled, e);
            return;
        }
        const uint16_t ppp = rd16(data + off + 6);
        if (ppp != 0x0021 && ppp != 0x0057) {
            return;  // LCP, IPCP, ...: PPP's own control traffic, not IP
        }
        const uint32_t plen = rd16(data + off + 4);
        id = rd16(data + off + 2);
        off += 8;
        if (plen >= 2 && off + plen - 2 < len) {
            len = off + plen - 2;  // Ethernet padding after the PPP frame
        }
    } else {
        unsigned n = 0;
        for (;;) {
            if (off + 4 > len) {
                skip_tunnel(m, TunSkip::Garbled, e);
                return;
            }
            const uint32_t lse = rd32(data + off);
            off += 4;
            if ((lse & 0x100u) != 0) {
                id = lse >> 12;  // the bottom label (a VPN's, on an L3VPN)
                break;
            }
            if (++n == kMaxMplsLabels) {
                skip_tunnel(m, TunSkip::Unsupported, e);
                return;
            }
        }
        if (off >= len || ((data[off] >> 4) != 4 && (data[off] >> 4) != 6)) {
            skip_tunnel(m, TunSkip::Unsupported, e);  // a pseudowire (control word, Ethernet)
            return;
        }
    }
    parse_inner(data, off, len, m, e, id, 0, nullptr, nullptr);
}


} // namespace

void parse_packet(const uint8_t* data, uint32_t len, PacketMeta& m) noexcept {
    // Only the fields that are not unconditionally written below are reset; key is written by
    // make_flow_key (its vlan is read back there, so it is set first).
    m.kind = PacketKind::Malformed;
    m.error = DropReason::None;
    m.reversed = 0;
    m.ip_version = 0;
    m.l4_proto = 0;
    m.tcp_flags = 0;
    m.is_fragment = 0;
    m.first_fragment = 0;
    m.vlan_count = 0;
    m.l3_offset = 0;
    m.l4_offset = 0;
    m.payload_offset = 0;
    m.l3_length = 0;
    m.payload_length = 0;
    m.frag_id = 0;
    m.tcp_seq = 0;
    m.tcp_ack = 0;
    m.key.vlan = 0;
    m.encap = Encap::None;
    m.encap_depth = 0;
    m.tun_skip = TunSkip::None;
    m.skip_encap = Encap::None;

    if (len < 14) {
        malformed(m, DropReason::L2Truncated);
        return;
    }
    uint32_t off = 12;
    uint16_t et = rd16(data + off);
    uint32_t vlan = 0;
    while (et != kEthIpv4 && (et == kEthVlan || et == kEthQinQ || et == kEthQinQOld)) {  // untagged IPv4: one test
        if (m.vlan_count == kMaxVlanTags) {
            malformed(m, DropReason::VlanTooDeep);
            return;
        }
        if (off + 6 > len) {
            malformed(m, DropReason::L2Truncated);
            return;
        }
        vlan = vlan << 12 | (rd16(data + off + 2) & 0x0fffu);
        ++m.vlan_count;
        off += 4;
        et = rd16(data + off);
    }
    off += 2;
    m.ethertype = et;
    m.key.vlan = vlan;
    m.l3_offset = static_cast<uint16_t>(off);
    if (len > 65535) {
        len = 65535; // offsets are 16-bit; jumbo frames beyond 64 KiB do not exist on the wire
    }
    if (et == kEthIpv4) {
        parse_ipv4<false>(data, off, len, m);
    } else if (et == kEthIpv6) {
        parse_ipv6(data, off, len, m);
    } else if (et == kEthPppoe || et == kEthMpls || et == kEthMplsMc) [[unlikely]] {
        decap_l2(data, off, len, m, et);
    } else {
        m.kind = PacketKind::NonIp;
    }
}

} // namespace l7gate::dp
