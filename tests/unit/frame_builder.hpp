#pragma once
// Hand-built frames for the parser and flow-key unit tests: Ethernet II with VLAN tags,
// IPv4 (options, fragments, header checksum), IPv6 and its extension headers, TCP, UDP,
// ICMP and ICMPv6. Every length field defaults to the consistent value and can be overridden
// to build malformed packets. Checksums (IPv4 header, TCP/UDP/ICMP with pseudo-header) are
// filled so the frames look real, although the parser does not validate them.
//
// Addresses come only from the benchmarking ranges 198.18.0.0/15 and 2001:db8::/32.
//
// The *Spec structs are meant for designated initializers naming only what a test changes:
// ipv4_frame({.proto = ipproto::kUdp, .mf = true}, ...). GCC 12 flags every omitted member
// with -Wmissing-field-initializers even though each has a default member initializer, so
// the test files that include this header turn that one warning off.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <vector>

#include "dataplane/drop_reason.hpp"
#include "dataplane/packet_parser.hpp"

// gtest prints scoped enums as raw bytes; give it readable names (found by ADL).
namespace l7gate::dp {

inline void PrintTo(PacketKind k, std::ostream* os) {
    switch (k) {
    case PacketKind::NonIp:
        *os << "NonIp";
        return;
    case PacketKind::Ip:
        *os << "Ip";
        return;
    case PacketKind::Malformed:
        *os << "Malformed";
        return;
    }
    *os << "PacketKind(" << static_cast<unsigned>(k) << ")";
}

inline void PrintTo(DropReason r, std::ostream* os) {
    *os << drop_reason_name(r) << " (" << static_cast<unsigned>(r) << ")";
}

inline void PrintTo(const FlowKey& k, std::ostream* os) {
    const size_t alen = k.ip_version == 4 ? 4 : 16;
    *os << "{v" << static_cast<unsigned>(k.ip_version);
    *os << " proto " << static_cast<unsigned>(k.proto);
    *os << " vlan 0x" << std::hex << k.vlan << " pad 0x" << k.tunnel << std::dec;
    for (int slot = 0; slot < 2; ++slot) {
        *os << (slot == 0 ? " [" : " <-> [");
        for (size_t i = 0; i < 16; ++i) {
            if (i == alen) {
                *os << "|"; // the bytes after this must be zero
            }
            *os << (i == 0 || i == alen ? "" : (alen == 4 ? "." : ":")) << std::dec
                << static_cast<unsigned>(k.addr[slot][i]);
        }
        *os << "]:" << std::dec << k.port[slot];
    }
    *os << "}";
}

} // namespace l7gate::dp

namespace l7gate::test {

using Bytes = std::vector<uint8_t>;
using Ip4 = std::array<uint8_t, 4>;
using Ip6 = std::array<uint8_t, 16>;
using Mac = std::array<uint8_t, 6>;

namespace ether {
inline constexpr uint16_t kIpv4 = 0x0800;
inline constexpr uint16_t kArp = 0x0806;
inline constexpr uint16_t kIpv6 = 0x86dd;
inline constexpr uint16_t kLldp = 0x88cc;
inline constexpr uint16_t kMpls = 0x8847;
inline constexpr uint16_t kLocalExperimental = 0x88b5;
inline constexpr uint16_t kVlan = 0x8100;     // 802.1Q
inline constexpr uint16_t kQinQ = 0x88a8;     // 802.1ad service tag
inline constexpr uint16_t kVlan9100 = 0x9100; // legacy QinQ
} // namespace ether

namespace ipproto {
inline constexpr uint8_t kHopByHop = 0;
inline constexpr uint8_t kIcmp = 1;
inline constexpr uint8_t kTcp = 6;
inline constexpr uint8_t kUdp = 17;
inline constexpr uint8_t kRouting = 43;
inline constexpr uint8_t kFragment = 44;
inline constexpr uint8_t kGre = 47;
inline constexpr uint8_t kEsp = 50;
inline constexpr uint8_t kAh = 51;
inline constexpr uint8_t kIcmpv6 = 58;
inline constexpr uint8_t kNoNext = 59;
inline constexpr uint8_t kDestOpts = 60;
inline constexpr uint8_t kSctp = 132;
} // namespace ipproto

inline constexpr size_t kEthHdr = 14;
inline constexpr size_t kVlanHdr = 4;
inline constexpr size_t kIpv4Hdr = 20;
inline constexpr size_t kIpv6Hdr = 40;
inline constexpr size_t kTcpHdr = 20;
inline constexpr size_t kUdpHdr = 8;
inline constexpr size_t kEthMinFrame = 60; // without FCS

// ---- byte helpers --------------------------------------------------------------------------

inline void put8(Bytes& b, uint8_t v) {
    b.push_back(v);
}

inline void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

inline void put32(Bytes& b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}

inline void set16(Bytes& b, size_t off, uint16_t v) {
    b.at(off) = static_cast<uint8_t>(v >> 8);
    b.at(off + 1) = static_cast<uint8_t>(v);
}

inline void append(Bytes& b, const Bytes& tail) {
    b.insert(b.end(), tail.begin(), tail.end());
}

template <size_t N>
inline void append(Bytes& b, const std::array<uint8_t, N>& tail) {
    b.insert(b.end(), tail.begin(), tail.end());
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) {
        append(out, p);
    }
    return out;
}

// `n` bytes of a recognisable non-zero pattern (payload that must not be parsed as headers).
inline Bytes pattern(size_t n, uint8_t seed = 0x5a) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) {
        b[i] = static_cast<uint8_t>(seed + i * 7);
    }
    return b;
}

inline Bytes text(const char* s) {
    Bytes b;
    for (; *s != '\0'; ++s) {
        b.push_back(static_cast<uint8_t>(*s));
    }
    return b;
}

// Pads with zeros up to `min_len` (Ethernet padding to the 60-byte minimum by default).
inline Bytes pad_to(Bytes b, size_t min_len = kEthMinFrame) {
    if (b.size() < min_len) {
        b.resize(min_len, 0);
    }
    return b;
}

inline Bytes with_trailer(Bytes b, size_t n) {
    b.resize(b.size() + n, 0);
    return b;
}

// ---- addresses -----------------------------------------------------------------------------

constexpr Ip4 ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Ip4{a, b, c, d};
}

// Eight 16-bit groups, missing trailing groups are zero: ip6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}).
inline Ip6 ip6(std::initializer_list<uint16_t> groups) {
    Ip6 a{};
    size_t i = 0;
    for (uint16_t g : groups) {
        if (i >= 16) {
            break;
        }
        a[i] = static_cast<uint8_t>(g >> 8);
        a[i + 1] = static_cast<uint8_t>(g);
        i += 2;
    }
    return a;
}

inline const Ip4 kV4A = ip4(198, 18, 0, 1);
inline const Ip4 kV4B = ip4(198, 18, 0, 2);
inline const Ip4 kV4C = ip4(198, 19, 255, 254);
inline const Ip6 kV6A = ip6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1});
inline const Ip6 kV6B = ip6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 2});
inline const Ip6 kV6C = ip6({0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xfe});

inline const Mac kMacA = {0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}; // locally administered
inline const Mac kMacB = {0x02, 0x00, 0x5e, 0x00, 0x00, 0x02};

// ---- checksums -----------------------------------------------------------------------------

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) {
        acc += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    }
    if ((n & 1) != 0) {
        acc += static_cast<uint32_t>(p[n - 1] << 8);
    }
    return acc;
}

inline uint16_t fold(uint32_t acc) {
    while ((acc >> 16) != 0) {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    return static_cast<uint16_t>(~acc & 0xffff);
}

// Fills the TCP/UDP/ICMP/ICMPv6 checksum of a complete L4 message (no-op when the message is
// too short to hold its checksum field, i.e. deliberately truncated).
inline void fill_l4_checksum(Bytes& l4, uint8_t proto, uint32_t pseudo) {
    size_t off = 0;
    size_t min_len = 0;
    switch (proto) {
    case ipproto::kTcp:
        off = 16;
        min_len = kTcpHdr;
        break;
    case ipproto::kUdp:
        off = 6;
        min_len = kUdpHdr;
        break;
    case ipproto::kIcmp:
    case ipproto::kIcmpv6:
        off = 2;
        min_len = 4;
        break;
    default:
        return;
    }
    if (l4.size() < min_len) {
        return;
    }
    set16(l4, off, 0);
    uint16_t c = fold(sum16(l4.data(), l4.size(), proto == ipproto::kIcmp ? 0 : pseudo));
    if (proto == ipproto::kUdp && c == 0) {
        c = 0xffff;
    }
    set16(l4, off, c);
}

// ---- L4 ------------------------------------------------------------------------------------

struct TcpSpec {
    uint16_t sport = 40000;
    uint16_t dport = 80;
    uint32_t seq = 0x10000001;
    uint32_t ack = 0;
    uint8_t flags = dp::tcp_flag::kSyn;
    uint16_t window = 64240;
    Bytes options;                      // multiple of 4 bytes
    std::optional<uint8_t> data_offset; // overrides (20 + options) / 4
};

inline Bytes tcp(const TcpSpec& s, const Bytes& payload = {}) {
    Bytes b;
    put16(b, s.sport);
    put16(b, s.dport);
    put32(b, s.seq);
    put32(b, s.ack);
    uint8_t doff = s.data_offset.value_or(static_cast<uint8_t>((kTcpHdr + s.options.size()) / 4));
    put8(b, static_cast<uint8_t>(doff << 4));
    put8(b, s.flags);
    put16(b, s.window);
    put16(b, 0); // checksum, filled by ipv4()/ipv6()
    put16(b, 0); // urgent pointer
    append(b, s.options);
    append(b, payload);
    return b;
}

// MSS 1460, SACK permitted, timestamps, NOP, window scale 7: 20 bytes (data offset 10).
inline Bytes tcp_syn_options() {
    return Bytes{0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01,
                 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07};
}

struct UdpSpec {
    uint16_t sport = 40000;
    uint16_t dport = 53;
    std::optional<uint16_t> length; // overrides 8 + payload
};

inline Bytes udp(const UdpSpec& s, const Bytes& payload = {}) {
    Bytes b;
    put16(b, s.sport);
    put16(b, s.dport);
    put16(b, s.length.value_or(static_cast<uint16_t>(kUdpHdr + payload.size())));
    put16(b, 0); // checksum, filled by ipv4()/ipv6()
    append(b, payload);
    return b;
}

// ICMP / ICMPv6 echo: type 8 / 128 request, 0 / 129 reply.
inline Bytes icmp_echo(uint8_t type, uint16_t id, uint16_t seq, const Bytes& payload = {}) {
    Bytes b;
    put8(b, type);
    put8(b, 0); // code
    put16(b, 0); // checksum, filled by ipv4()/ipv6()
    put16(b, id);
    put16(b, seq);
    append(b, payload);
    return b;
}

// ---- IPv4 ----------------------------------------------------------------------------------

struct Ipv4Spec {
    Ip4 src = kV4A;
    Ip4 dst = kV4B;
    uint8_t proto = ipproto::kTcp;
    uint16_t id = 0x4242;
    bool df = false;
    bool mf = false;
    uint16_t frag_offset = 0; // 8-byte units (13 bits)
    uint8_t ttl = 64;
    Bytes options;                        // multiple of 4 bytes
    uint8_t version = 4;
    std::optional<uint8_t> ihl;           // overrides (20 + options) / 4
    std::optional<uint16_t> total_length; // overrides header + payload
};

inline Bytes ipv4(const Ipv4Spec& s, const Bytes& payload) {
    const size_t hlen = kIpv4Hdr + s.options.size();
    Bytes l4 = payload;
    if (!s.mf && s.frag_offset == 0) {
        uint32_t pseudo = sum16(s.src.data(), 4);
        pseudo = sum16(s.dst.data(), 4, pseudo);
        pseudo += s.proto;
        pseudo += static_cast<uint32_t>(l4.size());
        fill_l4_checksum(l4, s.proto, pseudo);
    }
    Bytes b;
    uint8_t ihl = s.ihl.value_or(static_cast<uint8_t>(hlen / 4));
    put8(b, static_cast<uint8_t>(s.version << 4 | (ihl & 0x0f)));
    put8(b, 0); // DSCP/ECN
    put16(b, s.total_length.value_or(static_cast<uint16_t>(hlen + l4.size())));
    put16(b, s.id);
    uint16_t frag = static_cast<uint16_t>((s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) |
                                          (s.frag_offset & 0x1fff));
    put16(b, frag);
    put8(b, s.ttl);
    put8(b, s.proto);
    put16(b, 0); // header checksum
    append(b, s.src);
    append(b, s.dst);
    append(b, s.options);
    set16(b, 10, fold(sum16(b.data(), b.size())));
    append(b, l4);
    return b;
}

// ---- IPv6 ----------------------------------------------------------------------------------

struct Ipv6Spec {
    Ip6 src = kV6A;
    Ip6 dst = kV6B;
    uint8_t next_header = ipproto::kTcp;
    uint8_t hop_limit = 64;
    uint32_t flow_label = 0x12345;
    uint8_t version = 6;
    std::optional<uint16_t> payload_length; // overrides payload size
};

// `payload` is everything after the fixed header: extension headers and the upper layer.
// The upper-layer checksum is filled only when it directly follows the fixed header.
inline Bytes ipv6(const Ipv6Spec& s, const Bytes& payload) {
    Bytes l4 = payload;
    uint32_t pseudo = sum16(s.src.data(), 16);
    pseudo = sum16(s.dst.data(), 16, pseudo);
    pseudo += static_cast<uint32_t>(l4.size());
    pseudo += s.next_header;
    fill_l4_checksum(l4, s.next_header, pseudo);
    Bytes b;
    put32(b, static_cast<uint32_t>(s.version) << 28 | (s.flow_label & 0xfffff));
    put16(b, s.payload_length.value_or(static_cast<uint16_t>(l4.size())));
    put8(b, s.next_header);
    put8(b, s.hop_limit);
    append(b, s.src);
    append(b, s.dst);
    append(b, l4);
    return b;
}

// Hop-by-hop (0) or destination options (60): (len8 + 1) * 8 bytes, filled with a PadN option.
inline Bytes ipv6_options_header(uint8_t next, uint8_t len8 = 0) {
    Bytes b;
    put8(b, next);
    put8(b, len8);
    const size_t pad = (static_cast<size_t>(len8) + 1) * 8 - 2;
    put8(b, 1); // PadN
    put8(b, static_cast<uint8_t>(pad - 2));
    b.resize(b.size() + pad - 2, 0);
    return b;
}

// Routing header (43), experimental routing type 253, segments left 0.
inline Bytes ipv6_routing_header(uint8_t next, uint8_t len8 = 0) {
    Bytes b;
    put8(b, next);
    put8(b, len8);
    put8(b, 253); // routing type (RFC 4727 experimental)
    put8(b, 0);   // segments left
    b.resize((static_cast<size_t>(len8) + 1) * 8, 0);
    return b;
}

// Fragment header (44): always 8 bytes; offset in 8-byte units.
inline Bytes ipv6_fragment_header(uint8_t next, uint16_t offset8, bool more, uint32_t id) {
    Bytes b;
    put8(b, next);
    put8(b, 0);
    put16(b, static_cast<uint16_t>(offset8 << 3 | (more ? 1 : 0)));
    put32(b, id);
    return b;
}

// Authentication header (51): (payload_len + 2) * 4 bytes; 4 => 24 bytes (96-bit ICV).
inline Bytes ipv6_ah_header(uint8_t next, uint8_t payload_len = 4) {
    Bytes b;
    put8(b, next);
    put8(b, payload_len);
    put16(b, 0);          // reserved
    put32(b, 0x00001001); // SPI
    put32(b, 7);          // sequence number
    b.resize((static_cast<size_t>(payload_len) + 2) * 4, 0xa5);
    return b;
}

// ---- Ethernet ------------------------------------------------------------------------------

struct VlanTag {
    uint16_t tpid = ether::kVlan;
    uint16_t vid = 0;
    uint8_t pcp = 0;
    bool dei = false;
};

// Tags are listed outermost first.
inline Bytes ethernet(uint16_t ethertype, const Bytes& payload,
                      const std::vector<VlanTag>& tags = {}, const Mac& dst = kMacB,
                      const Mac& src = kMacA) {
    Bytes b;
    append(b, dst);
    append(b, src);
    for (const VlanTag& t : tags) {
        put16(b, t.tpid);
        put16(b, static_cast<uint16_t>((t.pcp & 7) << 13 | (t.dei ? 0x1000 : 0) |
                                       (t.vid & 0x0fff)));
    }
    put16(b, ethertype);
    append(b, payload);
    return b;
}

inline Bytes ipv4_frame(const Ipv4Spec& ip, const Bytes& l4,
                        const std::vector<VlanTag>& tags = {}) {
    return ethernet(ether::kIpv4, ipv4(ip, l4), tags);
}

inline Bytes ipv6_frame(const Ipv6Spec& ip, const Bytes& payload,
                        const std::vector<VlanTag>& tags = {}) {
    return ethernet(ether::kIpv6, ipv6(ip, payload), tags);
}

// ARP request 198.18.0.1 asks for 198.18.0.2, padded to the Ethernet minimum.
inline Bytes arp_frame(const std::vector<VlanTag>& tags = {}) {
    Bytes a;
    put16(a, 1);      // hardware type Ethernet
    put16(a, 0x0800); // protocol type IPv4
    put8(a, 6);
    put8(a, 4);
    put16(a, 1); // request
    append(a, kMacA);
    append(a, kV4A);
    append(a, Mac{});
    append(a, kV4B);
    return pad_to(ethernet(ether::kArp, a, tags, Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
}

// ---- expected keys -------------------------------------------------------------------------

// The canonical key written out by hand (slot 0 = lower endpoint), independent of make_flow_key;
// N address bytes: 4 for IPv4, 16 for IPv6.
template <size_t N>
inline dp::FlowKey key_by_hand(const std::array<uint8_t, N>& lo, uint16_t lo_port,
                               const std::array<uint8_t, N>& hi, uint16_t hi_port, uint8_t proto,
                               uint32_t vlan) {
    static_assert(N == 4 || N == 16);
    dp::FlowKey k;
    std::memset(&k, 0, sizeof(k));
    std::memcpy(k.addr[0], lo.data(), N);
    std::memcpy(k.addr[1], hi.data(), N);
    k.port[0] = lo_port;
    k.port[1] = hi_port;
    k.vlan = vlan;
    k.proto = proto;
    k.ip_version = N == 4 ? 4 : 6;
    return k;
}

inline dp::FlowKey key_v4(const Ip4& lo, uint16_t lo_port, const Ip4& hi, uint16_t hi_port,
                          uint8_t proto, uint32_t vlan = 0) {
    return key_by_hand(lo, lo_port, hi, hi_port, proto, vlan);
}

inline dp::FlowKey key_v6(const Ip6& lo, uint16_t lo_port, const Ip6& hi, uint16_t hi_port,
                          uint8_t proto, uint32_t vlan = 0) {
    return key_by_hand(lo, lo_port, hi, hi_port, proto, vlan);
}

// ---- parsing over an exactly sized heap buffer ---------------------------------------------

// Copies the first `len` bytes of `frame` into a heap block of exactly `len` bytes, so that
// AddressSanitizer reports any read past the end, and parses it into a zeroed PacketMeta.
inline dp::PacketMeta parse_prefix(const Bytes& frame, size_t len) {
    auto buf = std::make_unique<uint8_t[]>(len);
    const size_t n = std::min(len, frame.size());
    if (n != 0) {
        std::memcpy(buf.get(), frame.data(), n);
    }
    dp::PacketMeta meta{};
    dp::parse_packet(buf.get(), static_cast<uint32_t>(len), meta);
    return meta;
}

inline dp::PacketMeta parse(const Bytes& frame) {
    return parse_prefix(frame, frame.size());
}

} // namespace l7gate::test
