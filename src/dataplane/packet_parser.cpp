#include "dataplane/packet_parser.hpp"

#include <cstring>

namespace l7gate::dp {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88a8;
constexpr uint16_t kEthQinQOld = 0x9100;

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

void parse_ipv4(const uint8_t* data, uint32_t off, uint32_t len, PacketMeta& m) noexcept {
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
        parse_ipv4(data, off, len, m);
    } else if (et == kEthIpv6) {
        parse_ipv6(data, off, len, m);
    } else {
        m.kind = PacketKind::NonIp;
    }
}

} // namespace l7gate::dp
